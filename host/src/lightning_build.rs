//! `lthost build model.py`: a Lightning file (or a package directory) compiled into a plugin
//! with no lthost API in it. The Python SDK's `torch`, `lightning` and `pytorch_lightning`
//! packages and the WIT package are embedded in this binary (build.rs) and written into a
//! directory kept per SDK version (beside the component cache), with an app module that finds the file's LightningModule and
//! LightningDataModule; componentize-py (from PyPI: the venv's, `$COMPONENTIZE_PY`, or on
//! PATH) compiles the component; the manifest is embedded, the component signed when a key
//! is given, and compiled into the component cache so that the first run starts at once.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::artifact::manifest::{self, Manifest};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/python_sdk.rs"));
}

/// What `lthost build` was asked for.
pub struct BuildRequest {
    pub source: PathBuf,
    pub model: Option<String>,
    pub data: Option<String>,
    pub key: Option<PathBuf>,
    pub manifest: Option<PathBuf>,
    pub output: Option<PathBuf>,
}

/// The module name and its directory: `dir/model.py` → (`model`, `dir`); a package directory
/// `dir/pkg/` → (`pkg`, `dir`).
fn module_of(source: &Path) -> Result<(String, PathBuf)> {
    let meta = std::fs::metadata(source).with_context(|| format!("reading {}", source.display()))?;
    let (name, parent) = if meta.is_dir() {
        if !source.join("__init__.py").is_file() {
            bail!("{}: a package directory needs an __init__.py", source.display());
        }
        (source.file_name(), source.parent())
    } else {
        if source.extension().is_none_or(|x| x != "py") {
            bail!("{}: lthost build takes a Python file (.py) or a package directory", source.display());
        }
        (source.file_stem(), source.parent())
    };
    let name = name.and_then(|n| n.to_str()).unwrap_or_default().to_string();
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        bail!("{}: `{name}` is not a Python module name (letters, digits, _)", source.display());
    }
    let dir = parent.filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((name, dir.canonicalize().with_context(|| format!("reading {}", dir.display()))?))
}

/// componentize-py: `$COMPONENTIZE_PY`, the `.venv` of the working directory, PATH, or the
/// venv whose torch this lthost was built against.
fn componentize_py() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("COMPONENTIZE_PY") {
        return Ok(PathBuf::from(p));
    }
    let venv = PathBuf::from(".venv/bin/componentize-py");
    if venv.is_file() {
        return Ok(venv);
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join("componentize-py")).find(|p| p.is_file()));
    let built_with = option_env!("LTHOST_PYTHON_BIN").map(|b| Path::new(b).join("componentize-py"));
    found.flatten().or(built_with.filter(|p| p.is_file())).ok_or_else(|| {
        anyhow::anyhow!(
            "lthost build needs componentize-py: `pip install componentize-py==0.25.1`, or set COMPONENTIZE_PY"
        )
    })
}

/// A class name given on the command line as a Python literal (None when not given).
fn python_str(v: &Option<String>, flag: &str) -> Result<String> {
    match v {
        Some(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Ok(format!("{s:?}")),
        Some(s) => bail!("--{flag} {s:?}: a class name (letters, digits, _)"),
        None => Ok("None".into()),
    }
}

/// The manifest: `--manifest`, else `lthost.toml` beside the source, else one named after
/// the module that requests no capabilities.
fn manifest_for(req: &BuildRequest, module: &str, dir: &Path) -> Result<Manifest> {
    let beside = dir.join("lthost.toml");
    match &req.manifest {
        Some(p) => Manifest::from_toml_file(p),
        None if beside.is_file() => Manifest::from_toml_file(&beside),
        None => Ok(Manifest {
            name: module.replace('_', "-"),
            version: "0.1.0".into(),
            authors: Vec::new(),
            description: format!("{module}.py, built by lthost build"),
            wit: manifest::WIT.to_string(),
            capabilities: Vec::new(),
            defaults: None,
        }),
    }
}

/// The embedded files under `prefix` (`wit/`), by their path below it, as text.
pub(crate) fn embedded_files(prefix: &str) -> Vec<(String, String)> {
    crate::scaffold::files_under(embedded::FILES, prefix)
}

/// Writes the embedded SDK and WIT files under `root` (`sdk/…`, `wit/…`).
fn write_sdk(root: &Path) -> Result<()> {
    for (rel, bytes) in embedded::FILES {
        let dest = if rel.starts_with("wit/") { root.join(rel) } else { root.join("sdk").join(rel) };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&dest, bytes).with_context(|| format!("writing {}", dest.display()))?;
    }
    Ok(())
}

/// The SDK, kept beside the component cache per SDK version (`python-sdk/<digest>`), so
/// that CPython's compiled modules (`__pycache__`) persist between builds: componentize-py
/// snapshots the interpreter's heap, and compiling the SDK's sources in that heap leaves it
/// more than twice as large (a 42 MB component instead of 19). None: the cache is off.
fn kept_sdk() -> Result<Option<PathBuf>> {
    let Some(cache) = crate::plugin::cache::ComponentCache::from_env() else { return Ok(None) };
    let mut all = Vec::new();
    for (rel, bytes) in embedded::FILES {
        all.extend_from_slice(rel.as_bytes());
        all.extend_from_slice(bytes);
    }
    let digest = crate::artifact::sha256_hex(&all);
    let root = cache.dir.with_file_name("python-sdk");
    let dir = root.join(&digest[..16]);
    if !dir.is_dir() {
        let staging = root.join(format!(".{}-{}", &digest[..16], std::process::id()));
        if let Err(e) = write_sdk(&staging) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        if std::fs::rename(&staging, &dir).is_err() && !dir.is_dir() {
            bail!("could not keep the Python SDK at {}", dir.display());
        }
        let _ = std::fs::remove_dir_all(&staging); // another build kept it first
    }
    Ok(Some(dir))
}

/// Builds the plugin; returns where it was written and its manifest.
pub fn build(req: &BuildRequest) -> Result<(PathBuf, Manifest)> {
    let (module, dir) = module_of(&req.source)?;
    let manifest = manifest_for(req, &module, &dir)?;
    let tool = componentize_py()?;
    let work = tempfile::tempdir().context("a temporary directory for the build")?;
    let sdk_root = match kept_sdk()? {
        Some(d) => d,
        None => {
            write_sdk(work.path())?;
            work.path().to_path_buf()
        }
    };
    // Compiled modules from an earlier build: one componentize-py pass; else a first pass
    // compiles them and a second makes the component.
    let passes = if sdk_root.join("sdk/torch/__pycache__").is_dir() { 1 } else { 2 };
    let app = work.path().join("app");
    std::fs::create_dir_all(&app).context("creating the app module's directory")?;
    std::fs::write(
        app.join("lthost_app.py"),
        format!(
            "from lightning._callbacks import FileCallbacks  # noqa: F401\nfrom lightning._component import DataModule, LightningModule, LrSchedulers, PluginOptimizers, read_main_block, use  # noqa: F401\nfrom lightning._script import load\n\n{module} = load(\"{module}\")\n\nuse({module}, model={}, data={})\nread_main_block({module}, __file__)\n",
            python_str(&req.model, "model")?,
            python_str(&req.data, "data")?
        ),
    )
    .context("writing the app module")?;
    let out_dir = work.path().join("out");
    std::fs::create_dir_all(&out_dir).context("creating the output directory")?;
    let raw = out_dir.join("component.wasm");
    for _ in 0..passes {
        let out = Command::new(&tool)
            .arg("-d")
            .arg(sdk_root.join("wit"))
            .args(["-w", "lightning-file", "componentize", "-p"])
            .arg(sdk_root.join("sdk"))
            .arg("-p")
            .arg(&dir)
            .arg("-p")
            .arg(&app)
            .arg("lthost_app")
            .arg("-o")
            .arg(&raw)
            // Its own Rust backtrace says nothing about the user's file.
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .output()
            .with_context(|| format!("running {}", tool.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!("building {} failed:\n{}", req.source.display(), python_error(&err, &dir));
        }
    }
    let mut manifest = manifest;
    let found = std::fs::read_to_string(app.join("lthost_main_block.json")).ok();
    let (defaults, notes) = crate::main_block::checked(found.as_deref());
    for n in notes {
        eprintln!("note: {n}");
    }
    if let Some(d) = defaults {
        eprintln!(
            "defaults from {}'s __main__ block: {} (a run's config, --set and flags go over them)",
            req.source.display(),
            crate::main_block::describe(&d)
        );
        manifest.defaults = Some(d);
    }
    let bytes = std::fs::read(&raw).with_context(|| format!("reading {}", raw.display()))?;
    let mut bytes = manifest::embed(&bytes, &manifest)?;
    if let Some(key) = &req.key {
        let sk = crate::artifact::signing::read_secret_key(key)?;
        bytes = crate::artifact::signing::sign(&bytes, &sk, false)?;
    }
    let dest = req.output.clone().unwrap_or_else(|| PathBuf::from(format!("{}.wasm", manifest.name)));
    crate::fs::write_atomic(&dest, &bytes)?;
    // Compiled now, into the cache the runs read, so that the first run does not compile.
    // A failure here costs the first run its compilation, nothing more: a warning.
    if crate::plugin::cache::ComponentCache::from_env().is_some() {
        let compiled = crate::plugin::runtime::Runtime::new()
            .and_then(|r| r.component(&bytes, &crate::artifact::sha256_hex(&bytes)).map(|_| ()));
        if let Err(e) = compiled {
            eprintln!("warning: {} was built but not compiled into the component cache: {e}", dest.display());
        }
    }
    Ok((dest, manifest))
}

/// componentize-py's report of a failed build as the user's Python error: the traceback of
/// the file's import through the user's own files (componentize-py names the SDK's
/// directory `/0`, the file's `/1`, the app module's `/2`, the standard library's `/python`),
/// their paths the user's; every frame when none is the user's; componentize-py's whole
/// text when it holds no traceback of the import (its own failure).
fn python_error(stderr: &str, dir: &Path) -> String {
    let Some(start) = stderr.find("AssertionError: Traceback (most recent call last):") else {
        return format!("componentize-py: {}", stderr.trim_end());
    };
    let inner = &stderr[start + "AssertionError: ".len()..];
    let inner = inner.find("\n\nCaused by:").map_or(inner, |end| &inner[..end]);
    let users = inner.contains("  File \"/1/");
    let mut out = Vec::new();
    let mut keep_frame = true;
    for line in inner.lines() {
        if let Some(rest) = line.strip_prefix("  File \"") {
            keep_frame = !users || rest.starts_with("/1/");
            if keep_frame {
                let rest = if let Some(own) = rest.strip_prefix("/1/") {
                    format!("{}/{own}", dir.display())
                } else if let Some(sdk) = rest.strip_prefix("/0/") {
                    format!("<lthost SDK>/{sdk}")
                } else {
                    rest.to_string()
                };
                out.push(format!("  File \"{rest}"));
            }
        } else if line.starts_with("    ") {
            if keep_frame {
                out.push(line.to_string());
            }
        } else {
            keep_frame = true;
            out.push(line.to_string());
        }
    }
    out.join("\n").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_and_the_wit_package_are_embedded() {
        let names: Vec<&str> = embedded::FILES.iter().map(|(n, _)| *n).collect();
        for want in [
            "torch/__init__.py",
            "torch/_schemas.py",
            "lightning/_component.py",
            "pytorch_lightning/__init__.py",
            "wit/aten.wit",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
    }

    #[test]
    fn a_failed_build_shows_the_files_python_error() {
        let stderr = "Traceback (most recent call last):\n  File \"/v/bin/componentize-py\", line 8, in <module>\n    sys.exit(script())\n             ^^^^^^^^\nAssertionError: Traceback (most recent call last):\n  File \"/2/lthost_app.py\", line 4, in <module>\n    model = load(\"model\")\n            ^^^^^^^^^^^^^\n  File \"/0/lightning/_script.py\", line 9, in load\n    return _import(name)\n  File \"/1/model.py\", line 24, in <module>\n    x = torch.randn(3)\nRuntimeError: aten::randn at build time\n\n\nCaused by:\n    RuntimeError: aten::randn at build time\n";
        let shown = python_error(stderr, Path::new("/home/me/proj"));
        assert_eq!(
            shown,
            "Traceback (most recent call last):\n  File \"/home/me/proj/model.py\", line 24, in <module>\n    x = torch.randn(3)\nRuntimeError: aten::randn at build time"
        );
        // An error in no file of the user's keeps every frame.
        let sdk_only = stderr.replace("/1/model.py", "/0/torch/nn.py");
        assert!(python_error(&sdk_only, Path::new("/p")).contains("File \"<lthost SDK>/lightning/_script.py\", line 9"));
        // componentize-py's own failure is shown whole.
        assert_eq!(python_error("error: no such world\n", Path::new("/p")), "componentize-py: error: no such world");
    }

    #[test]
    fn a_source_must_be_a_python_module() {
        let d = tempfile::tempdir().expect("tempdir");
        let bad = d.path().join("my-model.py");
        std::fs::write(&bad, "").expect("write");
        assert!(module_of(&bad).unwrap_err().to_string().contains("not a Python module name"));
        let txt = d.path().join("model.txt");
        std::fs::write(&txt, "").expect("write");
        assert!(module_of(&txt).unwrap_err().to_string().contains(".py"));
        let ok = d.path().join("model.py");
        std::fs::write(&ok, "").expect("write");
        assert_eq!(module_of(&ok).expect("a module").0, "model");
    }
}
