//! libtorch's CUDA library on demand. `lthost` is linked without `libtorch_cuda` (with it,
//! every start loads cudart, cuBLAS, cuSPARSE, cuFFT, … — ~0.25 s and ~400 MB before
//! `main`, even on a machine without a GPU). When a run may use CUDA — an NVIDIA driver is
//! present and `--accelerator cpu` was not given — the process re-executes itself once with
//! `libtorch_cuda` in `LD_PRELOAD`, so the library is loaded and its kernels and hooks are
//! registered before `main`, exactly as when it is linked.

use std::ffi::OsString;
use std::path::Path;

/// Set in the re-executed process (and honoured: never re-execute twice).
const PRELOADED: &str = "LTHOST_CUDA_PRELOADED";
/// `1`: preload even without a driver (tests exercise the re-execution on any machine).
const FORCE: &str = "LTHOST_PRELOAD_CUDA";

/// The CUDA library of the libtorch lthost was built against (None: a CPU-only libtorch).
fn library() -> Option<&'static str> {
    option_env!("LTHOST_TORCH_CUDA_LIB")
}

fn driver_present() -> bool {
    Path::new("/proc/driver/nvidia/version").exists() || Path::new("/dev/nvidiactl").exists()
}

/// Whether these command-line arguments train or evaluate a model on a device of lthost's
/// choosing (not `--accelerator cpu`, not a command that runs no model).
fn may_use_cuda(args: &[OsString]) -> bool {
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let command = words.iter().find(|w| !w.starts_with('-')).copied().unwrap_or("");
    if !["run", "fit", "validate", "test", "predict", "lr-find"].contains(&command) {
        return false;
    }
    let cpu_only =
        words.windows(2).any(|w| w[0] == "--accelerator" && w[1] == "cpu") || words.contains(&"--accelerator=cpu");
    !cpu_only
}

/// Re-executes this process with libtorch's CUDA library preloaded when the run may use
/// CUDA; returns when it does not (or when re-executing failed, with a warning: the run
/// then goes on without CUDA).
pub fn preload_if_needed() {
    let Some(lib) = library() else { return };
    if std::env::var_os(PRELOADED).is_some() {
        tracing::debug!(library = lib, "libtorch's CUDA library preloaded");
        return;
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let forced = std::env::var(FORCE).is_ok_and(|v| v == "1");
    if !(forced || driver_present()) || !may_use_cuda(&args) || !Path::new(lib).exists() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut preload = OsString::from(lib);
    if let Some(existing) = std::env::var_os("LD_PRELOAD") {
        preload.push(":");
        preload.push(existing);
    }
    use std::os::unix::process::CommandExt as _;
    let err = std::process::Command::new(exe).args(&args[1..]).env("LD_PRELOAD", preload).env(PRELOADED, "1").exec();
    eprintln!("warning: could not restart with libtorch's CUDA library ({lib}): {err}; going on without CUDA");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        std::iter::once("lthost").chain(s.iter().copied()).map(OsString::from).collect()
    }

    #[test]
    fn only_runs_that_may_use_cuda_restart() {
        assert!(may_use_cuda(&args(&["fit", "p.wasm"])));
        assert!(may_use_cuda(&args(&["-v", "run", "p.wasm", "--accelerator", "cuda"])));
        assert!(!may_use_cuda(&args(&["fit", "p.wasm", "--accelerator", "cpu"])));
        assert!(!may_use_cuda(&args(&["fit", "p.wasm", "--accelerator=cpu"])));
        assert!(!may_use_cuda(&args(&["sign", "p.wasm"])));
        assert!(!may_use_cuda(&args(&["--version"])));
    }
}
