//! `lthost init`: a new plugin project from a template that builds and trains as is — a
//! small regression MLP (y = 0.5 · sum(x), two Linear layers, Adam) with its DataModule, a
//! manifest, a run file, a `build.sh` and a README with the build, sign and run commands — in
//! Rust, Python, JavaScript or C (one file per language's template). The project holds what
//! it builds against (the WIT package, the language's SDK, both embedded in lthost), so it
//! names no path of the machine it was made on and needs no lthost checkout.

mod c;
mod js;
mod python;
mod rust;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// A language's files, the commands that build `<name>.wasm`, and the file to edit.
pub(crate) struct Template {
    pub files: Vec<(String, String)>,
    pub build: String,
    pub source: &'static str,
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/language_sdks.rs"));
}

/// The files of an embedded list under `prefix`, by their path below it, as text.
pub(crate) fn files_under(files: &[(&str, &[u8])], prefix: &str) -> Vec<(String, String)> {
    files
        .iter()
        .filter_map(|(rel, bytes)| {
            Some((rel.strip_prefix(prefix)?.to_string(), String::from_utf8_lossy(bytes).into_owned()))
        })
        .collect()
}

/// The embedded language SDK files under `prefix` (`sdk/src/`, `sdk/c/`, ...).
pub(crate) fn sdk_files(prefix: &str) -> Vec<(String, String)> {
    files_under(embedded::FILES, prefix)
}

/// The WIT package (`wit/*.wit`), which the Rust, JS and C builds read.
fn wit_files() -> Vec<(String, String)> {
    crate::lightning_build::embedded_files("wit/").into_iter().map(|(rel, text)| (format!("wit/{rel}"), text)).collect()
}

/// Writes the project into `dir` (which must not exist or be empty).
pub fn init(dir: &Path, lang: &str) -> Result<Vec<PathBuf>> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty", dir.display());
    }
    let raw = dir.file_name().and_then(|n| n.to_str()).unwrap_or("my-plugin");
    let name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        bail!("`{raw}`: a plugin name starts with a letter");
    }
    let t = match lang {
        "rust" => rust::files(&name),
        "python" => python::files(&name),
        "js" => js::files(&name)?,
        "c" => c::files(&name),
        other => bail!("lthost init --lang {other}: unknown language (rust, python, js, c)"),
    };
    let mut files = t.files;
    if lang != "python" {
        files.extend(wit_files());
    }
    files.push(("lthost.toml".into(), format!("name = \"{name}\"\nversion = \"0.1.0\"\nauthors = []\ndescription = \"\"\nwit = \"lt:plugin@0.3.0\"\n{CAPABILITIES}")));
    files.push((
        "run.toml".into(),
        "[trainer]\nmax_epochs = 10\nseed = 0\n\n[hparams]\nlr = 0.01\nhidden = 32\n".to_string(),
    ));
    files.push((
        "README.md".into(),
        format!(
            "# {name}\n\nAn lthost plugin ({lang}): a LightningModule and its DataModule, as a WebAssembly component.\n\n```sh\n{}\nlthost keygen --out keys/me                      # once\nlthost sign {name}.wasm --key keys/me.key\nlthost fit {name}.wasm --config run.toml --trusted-keys keys/me.pub\n```\n\nEdit `{}`; `lthost inspect {name}.wasm` shows what you built.\n",
            t.build, t.source
        ),
    ));
    files.push(("build.sh".into(), format!("#!/usr/bin/env bash\n# Builds {name}.wasm ({lang}) against lthost's WIT.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n{}\n", t.build)));
    let mut written = Vec::new();
    for (rel, text) in files {
        let p = dir.join(&rel);
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

/// The manifest's capabilities: none (the template's data are drawn in the plugin), and the
/// line to use for one that reads the run's data directory.
const CAPABILITIES: &str = "# What the plugin may use. Reading the run's data directory (`--data-dir`, `Tensor.load`,\n# `torch.load`) needs: capabilities = [\"data-read\"]\ncapabilities = []\n";
