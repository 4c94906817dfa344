//! Start-up: lthost is linked without libtorch's CUDA library and restarts itself with it
//! preloaded only when a run may use CUDA (an NVIDIA driver is present, or
//! LTHOST_PRELOAD_CUDA=1 as here); either way the run works and trains the same.

use std::process::Command;

use crate::common::{component_cache, plugin, trusted_keys};

fn fit(preload: bool) -> (bool, String, String) {
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("parity-mlp");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lthost"));
    cmd.args(["-vv", "fit", wasm.to_str().expect("utf-8"), "--max-epochs", "1", "--seed", "3", "--no-progress-bar"])
        .current_dir(d.path())
        .env("LTHOST_TRUSTED_KEYS", trusted_keys())
        .env("LTHOST_CACHE_DIR", component_cache())
        .env_remove("LTHOST_CUDA_PRELOADED");
    if preload {
        cmd.env("LTHOST_PRELOAD_CUDA", "1");
    } else {
        cmd.env_remove("LTHOST_PRELOAD_CUDA");
    }
    let out = cmd.output().expect("lthost runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn loss(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with("train_loss"))
        .map(str::to_string)
        .expect("train_loss in the summary")
}

#[test]
fn cuda_is_preloaded_only_when_wanted_and_changes_nothing_else() {
    let (ok, plain, err) = fit(false);
    assert!(ok, "{err}");
    let on_gpu_machine = std::path::Path::new("/proc/driver/nvidia/version").exists();
    if !on_gpu_machine {
        assert!(!err.contains("CUDA library preloaded"), "no driver: no restart\n{err}");
    } else {
        crate::common::note_skipped("no CUDA preload without a driver", "an NVIDIA driver is present");
    }
    let (ok, preloaded, err) = fit(true);
    assert!(ok, "{err}");
    if option_env!("LTHOST_TORCH_CUDA_LIB").is_some() {
        assert!(err.contains("CUDA library preloaded"), "the forced restart happened\n{err}");
    } else {
        crate::common::note_skipped("the forced CUDA preload", "this torch has no libtorch_cuda");
    }
    assert_eq!(loss(&plain), loss(&preloaded), "the same run either way");
}
