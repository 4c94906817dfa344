//! The compiled-component cache: the first run compiles and stores, the next loads; a
//! corrupt or foreign entry is ignored and replaced; a refused plugin is never compiled
//! or cached; the start-up time is reported.

use std::process::Command;

use crate::common::{plugin, trusted_keys};

fn run(cache: &std::path::Path, wasm: &std::path::Path, extra: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_lthost"))
        .args(["fit", wasm.to_str().expect("utf-8"), "--max-epochs", "1", "--no-progress-bar"])
        .args(extra)
        .current_dir(dir.path())
        .env("LTHOST_TRUSTED_KEYS", trusted_keys())
        .env("LTHOST_CACHE_DIR", cache)
        .output()
        .expect("lthost runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn entries(cache: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(cache).map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}

#[test]
fn components_are_compiled_once_then_loaded_from_the_cache() {
    let d = tempfile::tempdir().expect("tempdir");
    let cache = d.path().join("cache");
    let wasm = plugin("parity-mlp");
    let (ok, out, err) = run(&cache, &wasm, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("0 from the cache, 1 compiled"), "{out}");
    assert!(out.contains("start-up      "), "start-up time reported: {out}");
    let files = entries(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&cache).expect("cache dir").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the cache directory is private: {mode:o}");
    }
    let (ok, out, _) = run(&cache, &wasm, &[]);
    assert!(ok && out.contains("1 from the cache, 0 compiled"), "{out}");
    // An entry wasmtime refuses (corrupt, or from another wasmtime or CPU) is replaced.
    std::fs::write(&files[0], b"garbage").expect("write");
    let (ok, out, _) = run(&cache, &wasm, &[]);
    assert!(ok && out.contains("0 from the cache, 1 compiled"), "{out}");
    let (ok, out, _) = run(&cache, &wasm, &[]);
    assert!(ok && out.contains("1 from the cache, 0 compiled"), "{out}");
}

#[test]
fn refused_plugins_are_never_compiled_or_cached() {
    let d = tempfile::tempdir().expect("tempdir");
    let cache = d.path().join("cache");
    let mut bytes = std::fs::read(plugin("parity-mlp")).expect("plugin");
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    let changed = d.path().join("changed.wasm");
    std::fs::write(&changed, &bytes).expect("write");
    let (ok, _, err) = run(&cache, &changed, &["--allow-unsigned"]);
    assert!(!ok && err.contains("changed after signing"), "{err}");
    assert!(entries(&cache).is_empty(), "nothing was compiled into the cache");
}
