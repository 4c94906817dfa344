//! `lthost init`: a new plugin project from a template that builds and trains as is — a
//! small regression MLP with its DataModule, a manifest, a run file and a README with the
//! build, sign and run commands.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

const LIB_RS: &str = r#"//! {name}: a LightningModule and a DataModule for lthost (`lthost init` template).
//! Learns y = 0.5 * sum(x) from noisy samples with a two-layer MLP.

use lthost_sdk::nn::Linear;
use lthost_sdk::prelude::*;

struct Model {
    hidden: Linear,
    out: Linear,
}

impl Model {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.out.forward(&self.hidden.forward(x).relu())
    }
}

impl LightningModule for Model {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"lr": 0.01, "hidden": 32})
    }

    fn configure(hp: &Hparams) -> Result<Self, String> {
        let hidden = hp.u64_or("hidden", 32) as u32;
        Ok(Model { hidden: Linear::new("hidden", 8, hidden, true), out: Linear::new("out", hidden, 1, true) })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        Optimizer::adam(hp.f64_or("lr", 0.01)).into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let loss = F::mse_loss(&self.forward(&batch[0]), &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        Some(loss)
    }

    fn validation_step(&mut self, batch: Batch, _batch_idx: u64) {
        let loss = F::mse_loss(&self.forward(&batch[0]), &batch[1]);
        log::log_prog_bar("val_loss", &loss);
    }
}

struct Data {
    splits: Vec<Option<(Tensor, Tensor)>>,
    batch_size: u32,
}

impl DataModule for Data {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let n = hp.u64_or("samples", 512) as i64;
        let splits = (0..2)
            .map(|_| {
                let x = Tensor::randn(&[n, 8]);
                let y = x.sum_dims(&[1], true).mul_scalar(0.5);
                Some((x, y))
            })
            .collect();
        Ok(Data { splits, batch_size: hp.u64_or("batch_size", 32) as u32 })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.splits[0].take()?;
        Some(dataset(vec![x, y], self.batch_size, true))
    }

    fn val_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.splits[1].take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }
}

export_plugin!(Model, Data);
"#;

/// Writes the project into `dir` (which must not exist or be empty).
pub fn init(dir: &Path, lang: &str, sdk: &Path) -> Result<Vec<PathBuf>> {
    if lang != "rust" {
        bail!("lthost init --lang {lang}: not available yet; this lthost scaffolds rust (python, js and c are planned)");
    }
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty", dir.display());
    }
    let raw = dir.file_name().and_then(|n| n.to_str()).unwrap_or("my-plugin");
    let name: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        bail!("`{raw}`: a plugin name starts with a letter");
    }
    if !sdk.join("Cargo.toml").exists() {
        bail!("the lthost SDK is not at {} (lthost init writes a path dependency on it)", sdk.display());
    }
    let crate_name = name.replace('-', "_");
    let files: Vec<(&str, String)> = vec![
        (
            "Cargo.toml",
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nlthost-sdk = {{ path = {:?} }}\n\n# Its own workspace, wherever it lives.\n[workspace]\n\n[profile.release]\nopt-level = \"s\"\nstrip = \"debuginfo\"\n",
                sdk.display().to_string()
            ),
        ),
        ("src/lib.rs", LIB_RS.replace("{name}", &name)),
        ("lthost.toml", format!("name = \"{name}\"\nversion = \"0.1.0\"\nauthors = []\ndescription = \"\"\nwit = \"lt:plugin@0.1.0\"\ncapabilities = []\n")),
        ("run.toml", "[trainer]\nmax_epochs = 10\nseed = 0\n\n[hparams]\nlr = 0.01\nhidden = 32\n".to_string()),
        (".gitignore", "/target\n/lightning_logs\n".to_string()),
        (
            "README.md",
            format!(
                "# {name}\n\nAn lthost plugin (a LightningModule and its DataModule, as a WebAssembly component).\n\n```sh\nrustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2\nlthost manifest target/wasm32-wasip2/release/{crate_name}.wasm --from lthost.toml --output {name}.wasm\nlthost keygen --out keys/me                      # once\nlthost sign {name}.wasm --key keys/me.key\nlthost fit {name}.wasm --config run.toml --trusted-keys keys/me.pub\n```\n\nEdit `src/lib.rs`; `lthost inspect {name}.wasm` shows what you built.\n"
            ),
        ),
    ];
    let mut written = Vec::new();
    for (rel, text) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

/// The SDK beside this build of lthost (`<repo>/sdk`), or `LTHOST_SDK`.
pub fn sdk_path() -> PathBuf {
    if let Some(p) = std::env::var_os("LTHOST_SDK") {
        return PathBuf::from(p);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    here.canonicalize().unwrap_or(here)
}
