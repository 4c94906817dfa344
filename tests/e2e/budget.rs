//! The adversarial suite, memory: the tensor budget is charged where libtorch allocates, so
//! the red team's routes past it (views holding whole storages, parameters, autograd's
//! saved tensors, an unchecked `arange`) end in an op error naming the op, and the
//! process's peak memory stays within the budget plus a fixed overhead.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{component_cache, plugin, trusted_keys, Run};

/// The budget these runs get, and what a run may use beyond it and beyond a plain run of the
/// same plugin (libtorch's and wasmtime's own memory, a batch in flight, allocator slack).
const BUDGET_MB: u64 = 512;
const OVERHEAD_MB: u64 = 128;

/// Runs lthost as its own process and returns what it printed and its peak resident
/// memory in MiB (`wait4` on that one child).
fn run_measured(cwd: &Path, args: &[&str]) -> (Run, u64) {
    let out = cwd.join("stdout.txt");
    let err = cwd.join("stderr.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_lthost"))
        .args(args)
        .current_dir(cwd)
        .env_remove("LD_LIBRARY_PATH")
        .env("LTHOST_TRUSTED_KEYS", trusted_keys())
        .env("LTHOST_CACHE_DIR", component_cache())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("lthost runs");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, by its pid, writing into locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let run = Run { code, stdout: std::fs::read_to_string(out).unwrap_or_default(), stderr: std::fs::read_to_string(err).unwrap_or_default() };
    (run, usage.ru_maxrss as u64 / 1024)
}

fn attack(dir: &Path, attack: &str) -> (Run, u64) {
    let cfg = dir.join("budget.toml");
    std::fs::write(&cfg, format!("[plugin]\ntensor_memory_limit_mb = {BUDGET_MB}\n")).expect("config");
    let wasm = plugin("adversary");
    let hp = format!("{{\"attack\": \"{attack}\"}}");
    run_measured(dir, &["fit", wasm.to_str().expect("utf-8"), "--config", cfg.to_str().expect("utf-8"), "--max-epochs", "1", "--no-progress-bar", "--accelerator", "cpu", "--hparams", &hp])
}

#[test]
fn every_route_past_the_tensor_budget_is_an_op_error_within_bounded_memory() {
    let d = tempfile::tempdir().expect("tempdir");
    let (plain, base_mb) = attack(d.path(), "none");
    assert!(plain.ok(), "{}", plain.stderr);
    let over = format!("over its budget of {BUDGET_MB} MiB");
    let cases: &[(&str, &[&str])] = &[
        ("views", &["hook `training_step`", "op `zeros`", &over]),
        ("arange", &["hook `training_step`", "op `arange`", &over]),
        ("autograd", &["hook `training_step`", "op `tanh`", &over]),
        ("params", &["hook `configure`", &over]),
    ];
    for (name, needles) in cases {
        let (run, peak_mb) = attack(d.path(), name);
        let mut n = vec!["plugin `adversary`"];
        n.extend_from_slice(needles);
        run.assert_fails_with(&n);
        assert!(
            peak_mb <= base_mb + BUDGET_MB + OVERHEAD_MB,
            "{name}: peak {peak_mb} MiB, over the plain run's {base_mb} MiB + the {BUDGET_MB} MiB budget + {OVERHEAD_MB} MiB"
        );
        println!("{name}: peak {peak_mb} MiB (plain run {base_mb} MiB, budget {BUDGET_MB} MiB)");
    }
}
