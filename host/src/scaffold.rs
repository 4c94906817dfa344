//! `lthost init`: a new plugin project from a template that builds and trains as is — a
//! small regression MLP (y = 0.5 · sum(x), two Linear layers, Adam) with its DataModule, a
//! manifest, a run file and a README with the build, sign and run commands — in Rust,
//! Python, JavaScript or C (one file per language's template).

mod c;
mod js;
mod python;
mod rust;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// A language's files, the commands that build `<name>.wasm`, and the file to edit.
pub(crate) struct Template {
    pub files: Vec<(&'static str, String)>,
    pub build: String,
    pub source: &'static str,
}

/// Writes the project into `dir` (which must not exist or be empty).
pub fn init(dir: &Path, lang: &str, sdk: &Path) -> Result<Vec<PathBuf>> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty", dir.display());
    }
    let raw = dir.file_name().and_then(|n| n.to_str()).unwrap_or("my-plugin");
    let name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        bail!("`{raw}`: a plugin name starts with a letter");
    }
    if !sdk.join("Cargo.toml").exists() {
        bail!("the lthost SDK is not at {} (lthost init refers to it)", sdk.display());
    }
    let repo = sdk.parent().unwrap_or(sdk);
    let t = match lang {
        "rust" => rust::files(&name, sdk),
        "python" => python::files(&name),
        "js" => js::files(&name, sdk, repo)?,
        "c" => c::files(&name, sdk, repo),
        other => bail!("lthost init --lang {other}: unknown language (rust, python, js, c)"),
    };
    let mut files = t.files;
    files.push(("lthost.toml", format!("name = \"{name}\"\nversion = \"0.1.0\"\nauthors = []\ndescription = \"\"\nwit = \"lt:plugin@0.2.0\"\ncapabilities = []\n")));
    files.push(("run.toml", "[trainer]\nmax_epochs = 10\nseed = 0\n\n[hparams]\nlr = 0.01\nhidden = 32\n".to_string()));
    files.push((
        "README.md",
        format!(
            "# {name}\n\nAn lthost plugin ({lang}): a LightningModule and its DataModule, as a WebAssembly component.\n\n```sh\n{}\nlthost keygen --out keys/me                      # once\nlthost sign {name}.wasm --key keys/me.key\nlthost fit {name}.wasm --config run.toml --trusted-keys keys/me.pub\n```\n\nEdit `{}`; `lthost inspect {name}.wasm` shows what you built.\n",
            t.build, t.source
        ),
    ));
    if lang != "rust" {
        files.push(("build.sh", format!("#!/usr/bin/env bash\n# Builds {name}.wasm ({lang}) against lthost's WIT.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n{}\n", t.build)));
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        #[cfg(unix)]
        if rel == "build.sh" {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", p.display()))?;
        }
        written.push(p);
    }
    Ok(written)
}

/// `p` as one single-quoted shell word.
pub(crate) fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// The SDK beside this build of lthost (`<repo>/sdk`), or `LTHOST_SDK`.
pub fn sdk_path() -> PathBuf {
    if let Some(p) = std::env::var_os("LTHOST_SDK") {
        return PathBuf::from(p);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    here.canonicalize().unwrap_or(here)
}
