//! The adversarial suite, memory: the tensor budget is charged where libtorch allocates, so
//! the red team's routes past it (views holding whole storages, parameters, autograd's
//! saved tensors, an unchecked `arange`) end in an op error naming the op, and the
//! process's peak memory stays within the budget plus a fixed overhead.

use std::path::Path;
use std::process::Stdio;

use crate::common::{command, plugin, Run};

/// The budget these runs get, and what a run may use beyond it and beyond a plain run of the
/// same plugin (libtorch's and wasmtime's own memory, a batch in flight, allocator slack).
const BUDGET_MB: u64 = 512;
const OVERHEAD_MB: u64 = 128;

/// What one run took: its peak resident memory (`wait4` on that one child) and its peak
/// virtual size (VmPeak, read from /proc while it runs), in MiB.
struct Peaks {
    rss_mb: u64,
    vm_mb: u64,
}

/// Runs lthost as its own process, under `ulimit -v` = `vm_limit_mb` when given.
fn run_measured(cwd: &Path, args: &[&str], vm_limit_mb: Option<u64>) -> (Run, Peaks) {
    let out = cwd.join("stdout.txt");
    let err = cwd.join("stderr.txt");
    let mut cmd = match vm_limit_mb {
        Some(mb) => {
            let mut c = command("bash", cwd);
            c.args(["-c", &format!("ulimit -v {} && exec \"$0\" \"$@\"", mb * 1024), env!("CARGO_BIN_EXE_lthost")]);
            c
        }
        None => command(env!("CARGO_BIN_EXE_lthost"), cwd),
    };
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("lthost runs");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let status_file = format!("/proc/{}/status", child.id());
    let mut vm_kb = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmPeak:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                vm_kb = vm_kb.max(v);
            }
        }
        // SAFETY: polls our own child, by its pid, writing into locals.
        let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, libc::WNOHANG, &mut usage) };
        if pid == child.id() as libc::pid_t {
            break;
        }
        assert_eq!(pid, 0, "wait4");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let run = Run {
        code,
        stdout: std::fs::read_to_string(out).unwrap_or_default(),
        stderr: std::fs::read_to_string(err).unwrap_or_default(),
    };
    (run, Peaks { rss_mb: usage.ru_maxrss as u64 / 1024, vm_mb: vm_kb / 1024 })
}

fn attack(dir: &Path, attack: &str, vm_limit_mb: Option<u64>) -> (Run, Peaks) {
    let cfg = dir.join("budget.toml");
    std::fs::write(&cfg, format!("[plugin]\ntensor_memory_limit_mb = {BUDGET_MB}\n")).expect("config");
    let wasm = plugin("adversary");
    let hp = format!("{{\"attack\": \"{attack}\"}}");
    run_measured(
        dir,
        &[
            "fit",
            wasm.to_str().expect("utf-8"),
            "--config",
            cfg.to_str().expect("utf-8"),
            "--max-epochs",
            "1",
            "--no-progress-bar",
            "--accelerator",
            "cpu",
            "--hparams",
            &hp,
        ],
        vm_limit_mb,
    )
}

#[test]
fn every_route_past_the_tensor_budget_is_an_op_error_within_bounded_memory() {
    let d = tempfile::tempdir().expect("tempdir");
    let (plain, base) = attack(d.path(), "none", None);
    assert!(plain.ok(), "{}", plain.stderr);
    // The attacks run under `ulimit -v`: a plain run's peak address space (mostly wasmtime's
    // reservations for linear memory) + the budget + the overhead. The budget must refuse
    // first, with its own error; the plain run fits under the same limit.
    let limit = base.vm_mb + BUDGET_MB + OVERHEAD_MB;
    let (fits, _) = attack(d.path(), "none", Some(limit));
    assert!(fits.ok(), "a plain run under ulimit -v {limit} MiB:\n{}", fits.stderr);
    let over = format!("over its budget of {BUDGET_MB} MiB");
    let cases: &[(&str, &[&str])] = &[
        ("views", &["hook `training_step`", "op `zeros`", &over]),
        ("arange", &["hook `training_step`", "op `arange`", &over]),
        ("autograd", &["hook `training_step`", "op `tanh`", &over]),
        ("params", &["hook `configure`", &over]),
    ];
    for (name, needles) in cases {
        let (run, peak) = attack(d.path(), name, Some(limit));
        let mut n = vec!["plugin `adversary`"];
        n.extend_from_slice(needles);
        run.assert_fails_with(&n);
        assert!(
            peak.rss_mb <= base.rss_mb + BUDGET_MB + OVERHEAD_MB,
            "{name}: peak RSS {} MiB, over the plain run's {} MiB + the {BUDGET_MB} MiB budget + {OVERHEAD_MB} MiB",
            peak.rss_mb,
            base.rss_mb
        );
        println!("{name}: peak RSS {} MiB (plain run {} MiB), under ulimit -v {limit} MiB (plain run's VmPeak {} MiB), budget {BUDGET_MB} MiB", peak.rss_mb, base.rss_mb, base.vm_mb);
    }
}
