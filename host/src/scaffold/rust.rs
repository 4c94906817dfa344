//! The Rust template: a crate on the lthost SDK (a path dependency), built for
//! wasm32-wasip2 by cargo.

use super::Template;

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

/// The SDK's dependencies, as the workspace's Cargo.toml has them (a unit test keeps them so).
// serde_json's exact float parsing: an hparam such as `lr` is the double Python reads.
const SDK_DEPENDENCIES: &str =
    "wit-bindgen = \"0.61\"\nserde_json = { version = \"1\", features = [\"float_roundtrip\"] }\n";

pub fn files(name: &str) -> Template {
    let crate_name = name.replace('-', "_");
    let mut files = vec![
        (
            "Cargo.toml".to_string(),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nlthost-sdk = {{ path = \"lthost-sdk\" }}\n\n# Its own workspace, wherever it lives.\n[workspace]\n\n[profile.release]\nopt-level = \"s\"\nstrip = \"debuginfo\"\n"
            ),
        ),
        ("src/lib.rs".to_string(), LIB_RS.replace("{name}", name)),
        (".gitignore".to_string(), "/target\n/lightning_logs\n*.wasm\n".to_string()),
        (
            "lthost-sdk/Cargo.toml".to_string(),
            format!(
                "# The lthost Rust SDK {}, as `lthost init` wrote it (the WIT package is ../wit).\n[package]\nname = \"lthost-sdk\"\nversion = \"{}\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{SDK_DEPENDENCIES}",
                env!("CARGO_PKG_VERSION"),
                env!("CARGO_PKG_VERSION")
            ),
        ),
    ];
    files.extend(super::sdk_files("sdk/src/").into_iter().map(|(rel, text)| (format!("lthost-sdk/src/{rel}"), text)));
    Template {
        files,
        // Dependencies are built once into a target directory shared by projects (the
        // SDK and the plugin itself, a few seconds, per project).
        build: format!("target=\"${{CARGO_TARGET_DIR:-$HOME/.cache/lthost/cargo-target}}\"\nrustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2 --target-dir \"$target\"\nlthost manifest \"$target/wasm32-wasip2/release/{crate_name}.wasm\" --from lthost.toml --output {name}.wasm"),
        source: "src/lib.rs",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sdk_dependencies_are_the_workspaces() {
        let workspace =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).expect("Cargo.toml");
        for line in super::SDK_DEPENDENCIES.lines() {
            assert!(workspace.lines().any(|l| l.trim() == line), "the workspace's Cargo.toml has `{line}`");
        }
    }
}
