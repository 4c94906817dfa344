//! Checkpoints and exact resume: a deterministic run killed with SIGKILL at many points
//! (mid-epoch, at an epoch's last batch, during validation, during checkpoint writes) and
//! resumed from `last` ends with weights bit-identical to an uninterrupted run; SIGTERM
//! saves and exits with 143; a checkpoint loads in Python into the same torch model; a
//! corrupt or foreign checkpoint is refused with a clear error.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use lthost::checkpoint;

use crate::common::{leftover_temp_files, lthost, plugin, repo_root, Run};

const RUN: &str = r#"
[trainer]
max_epochs = 3
seed = 42
log_every_n_steps = 10
enable_progress_bar = false
[checkpoint]
save_last = true
save_top_k = 0
every_n_train_steps = 1
"#;

fn setup(dir: &Path) -> (String, String, String) {
    let cfg = dir.join("run.toml");
    let data = repo_root().join("plugins/digits-mlp/data");
    std::fs::write(&cfg, format!("{RUN}[plugin]\ndata_dir = {:?}\n", data.display().to_string()))
        .expect("write config");
    (plugin("digits-mlp").display().to_string(), cfg.display().to_string(), dir.join("ckpt").display().to_string())
}

fn fit_with(dir: &Path, fault: Option<&str>, extra: &[&str]) -> Run {
    let (wasm, cfg, ckdir) = setup(dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lthost"));
    cmd.env("LTHOST_TRUSTED_KEYS", crate::common::trusted_keys())
        .env("LTHOST_CACHE_DIR", crate::common::component_cache());
    cmd.args(["fit", &wasm, "--config", &cfg, "--checkpoint-dir", &ckdir]).args(extra).current_dir(dir);
    if let Some(f) = fault {
        cmd.env("LTHOST_FAULT", f);
    }
    let out = cmd.output().expect("lthost runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn weights(path: &Path) -> Vec<(String, tch::Tensor)> {
    let c = checkpoint::load(path).expect("a whole checkpoint");
    c.tensors.into_iter().filter(|(k, _)| k.starts_with("state_dict.")).collect()
}

fn assert_same_weights(a: &Path, b: &Path, what: &str) {
    let (wa, wb) = (weights(a), weights(b));
    assert_eq!(wa.len(), wb.len());
    for ((ka, ta), (kb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(ka, kb);
        assert!(ta.equal(tb), "{what}: `{ka}` differs from the uninterrupted run");
    }
}

#[test]
fn killed_runs_resume_to_bit_identical_weights() {
    let reference = tempfile::tempdir().expect("tempdir");
    let full = fit_with(reference.path(), None, &[]);
    assert!(full.ok(), "{}", full.stderr);
    let want = reference.path().join("ckpt/last.ckpt");
    // digits: 40 batches per epoch, 9 validation batches, one checkpoint write per step.
    let faults = ["step:7", "step:40", "val-batch:3", "val-batch:12", "ckpt-write:20", "ckpt-write:81", "step:101"];
    for fault in faults {
        let dir = tempfile::tempdir().expect("tempdir");
        let killed = fit_with(dir.path(), Some(fault), &[]);
        assert_eq!(killed.code, None, "{fault}: the process was killed by a signal\n{}", killed.stderr);
        assert!(killed.stderr.contains("LTHOST_FAULT: killing"), "{fault}: {}", killed.stderr);
        let last = dir.path().join("ckpt/last.ckpt");
        assert!(checkpoint::load(&last).is_ok(), "{fault}: the last checkpoint is whole after the kill");
        let resumed = fit_with(dir.path(), None, &["--ckpt-path", "last"]);
        assert!(resumed.ok(), "{fault}: {}", resumed.stderr);
        assert!(resumed.stdout.contains("Restored the training state"), "{fault}: {}", resumed.stdout);
        assert_same_weights(&want, &last, fault);
        assert!(leftover_temp_files(&dir.path().join("ckpt")).is_empty(), "{fault}: temp files left");
    }
}

/// Starts a long digits run, sends `signal` once training has begun, and returns the exit
/// code and what it printed after the signal.
fn run_until_signal(dir: &Path, signal: i32) -> (Option<i32>, Vec<String>) {
    let (wasm, cfg, ckdir) = setup(dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lthost"))
        .env("LTHOST_TRUSTED_KEYS", crate::common::trusted_keys())
        .env("LTHOST_CACHE_DIR", crate::common::component_cache())
        .args(["fit", &wasm, "--config", &cfg, "--checkpoint-dir", &ckdir, "--max-epochs", "200"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // The progress bar is off in this config: "Optimizer:" is the last line before training.
    for line in lines.by_ref() {
        if line.expect("line").starts_with("Optimizer:") {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    (child.wait().expect("wait").code(), rest)
}

#[test]
fn sigterm_saves_and_exits_143_then_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, rest) = run_until_signal(dir.path(), libc::SIGTERM);
    assert_eq!(code, Some(143), "exit code 128 + SIGTERM; output: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("signal 15 received")), "{rest:?}");
    let last = dir.path().join("ckpt/last.ckpt");
    let c = checkpoint::load(&last).expect("saved on SIGTERM");
    assert!(c.meta.global_step > 0);
    let resumed = fit_with(
        dir.path(),
        None,
        &["--ckpt-path", "last", "--max-epochs", "200", "--max-steps", &(c.meta.global_step + 5).to_string()],
    );
    assert!(resumed.ok(), "{}", resumed.stderr);
    assert!(resumed.stdout.contains(&format!("global steps {}", c.meta.global_step + 5)), "{}", resumed.stdout);
}

#[test]
fn sigusr1_saves_an_hpc_checkpoint_the_next_run_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, rest) = run_until_signal(dir.path(), libc::SIGUSR1);
    assert_eq!(code, Some(128 + libc::SIGUSR1), "{rest:?}");
    let hpc = dir.path().join("hpc_ckpt_1.ckpt");
    let saved = checkpoint::load(&hpc).expect("an HPC checkpoint");
    let next =
        fit_with(dir.path(), None, &["--max-epochs", "200", "--max-steps", &(saved.meta.global_step + 3).to_string()]);
    assert!(next.ok(), "{}", next.stderr);
    assert!(next.stdout.contains("hpc_ckpt_1.ckpt"), "resumed by itself: {}", next.stdout);
    assert!(next.stdout.contains(&format!("global steps {}", saved.meta.global_step + 3)), "{}", next.stdout);
}

#[test]
fn best_is_the_monitored_best_and_loads_for_test() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("run.toml");
    let data = repo_root().join("plugins/digits-mlp/data");
    std::fs::write(
        &cfg,
        format!("[trainer]\nmax_epochs = 4\nseed = 1\n[plugin]\ndata_dir = {:?}\n[checkpoint]\ndirpath = \"ck\"\nmonitor = \"val_acc\"\nmode = \"max\"\nsave_top_k = 2\nsave_last = true\nfilename = \"{{epoch}}-{{val_acc:.3f}}\"\n", data.display().to_string()),
    )
    .expect("write");
    let wasm = plugin("digits-mlp").display().to_string();
    let fit = lthost(dir.path(), &["fit", &wasm, "--config", cfg.to_str().expect("utf-8"), "--no-progress-bar"]);
    assert!(fit.ok(), "{}", fit.stderr);
    let kept: Vec<String> = std::fs::read_dir(dir.path().join("ck"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 3, "top 2 + last: {kept:?}");
    assert!(kept.iter().all(|k| k == "last.ckpt" || k.starts_with("epoch=")), "{kept:?}");
    let test = lthost(dir.path(), &["test", &wasm, "--config", cfg.to_str().expect("utf-8"), "--ckpt-path", "best"]);
    assert!(test.ok(), "{}", test.stderr);
    assert!(test.stdout.contains("Loaded the model weights from ck/epoch="), "{}", test.stdout);
}

#[test]
fn a_parity_checkpoint_loads_in_python_and_agrees_with_lthost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("parity-mlp").display().to_string();
    let fit = lthost(
        dir.path(),
        &[
            "fit",
            &wasm,
            "--seed",
            "3",
            "--max-epochs",
            "2",
            "--threads",
            "1",
            "--no-progress-bar",
            "--checkpoint-dir",
            "ck",
        ],
    );
    assert!(fit.ok(), "{}", fit.stderr);
    let ckpt = dir.path().join("ck/epoch=1-step=10.ckpt");
    assert!(ckpt.exists(), "{}", fit.stdout);
    let pred = lthost(
        dir.path(),
        &["predict", &wasm, "--seed", "3", "--threads", "1", "--ckpt-path", ckpt.to_str().expect("utf-8")],
    );
    assert!(pred.ok(), "{}", pred.stderr);
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/reference/check_checkpoint.py"))
        .arg(&ckpt)
        .arg(dir.path().join("predictions.safetensors"))
        .arg("3")
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn plugin_state_survives_a_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("hook-recorder").display().to_string();
    let args = [
        "fit",
        wasm.as_str(),
        "--max-steps",
        "6",
        "--log-every-n-steps",
        "1",
        "--seed",
        "0",
        "--no-progress-bar",
        "--checkpoint-dir",
        "ck",
    ];
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, "[checkpoint]\nsave_last = true\nsave_top_k = 0\nevery_n_train_steps = 1\n").expect("write");
    let mut killed = Command::new(env!("CARGO_BIN_EXE_lthost"));
    killed
        .env("LTHOST_TRUSTED_KEYS", crate::common::trusted_keys())
        .env("LTHOST_CACHE_DIR", crate::common::component_cache());
    killed
        .args(args)
        .args(["--config", cfg.to_str().expect("utf-8")])
        .env("LTHOST_FAULT", "step:4")
        .current_dir(dir.path());
    assert_eq!(killed.output().expect("runs").status.code(), None, "killed at step 4");
    let resumed =
        lthost(dir.path(), &[&args[..], &["--config", cfg.to_str().expect("utf-8"), "--ckpt-path", "last"]].concat());
    assert!(resumed.ok(), "{}", resumed.stderr);
    let rows = crate::common::read_metrics(&dir.path().join("lightning_logs/version_1"));
    let seen = crate::common::column(&rows, "seen");
    // The checkpoint of step 3 held the plugin's counter (3): steps 4..6 see 4, 5, 6.
    assert_eq!(seen, vec![4.0, 5.0, 6.0]);
    let c = checkpoint::load(&dir.path().join("ck/last.ckpt")).expect("checkpoint");
    let data_state = Vec::<u8>::try_from(&c.tensors["datamodule.state"]).expect("bytes");
    assert_eq!(data_state, b"datamodule-state");
}

#[test]
fn on_exception_checkpoint_saves_the_state_at_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, "[checkpoint]\non_exception = true\ndirpath = \"ck\"\n").expect("write");
    let wasm = plugin("faulty").display().to_string();
    let run = lthost(
        dir.path(),
        &["fit", &wasm, "--config", cfg.to_str().expect("utf-8"), "--hparams", r#"{"fault": "matmul"}"#],
    );
    run.assert_fails_with(&["op `matmul`"]);
    assert!(run.stderr.contains("on_exception.ckpt"), "{}", run.stderr);
    let c = checkpoint::load(&dir.path().join("ck/on_exception.ckpt")).expect("a whole checkpoint");
    assert!(c.tensors.contains_key("state_dict.layer.weight"));
}

#[test]
fn corrupt_and_foreign_checkpoints_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let digits = fit_with(dir.path(), None, &["--max-epochs", "1"]);
    assert!(digits.ok(), "{}", digits.stderr);
    let last = dir.path().join("ckpt/last.ckpt");
    // Another plugin's model: every mismatch reported at once.
    let wasm = plugin("parity-mlp").display().to_string();
    let foreign =
        lthost(dir.path(), &["fit", &wasm, "--max-epochs", "1", "--ckpt-path", last.to_str().expect("utf-8")]);
    foreign.assert_fails_with(&[
        "does not fit the model",
        "missing keys",
        "c_d1.weight",
        "unexpected keys",
        "hidden.weight",
    ]);
    // Truncated: refused whole, naming the file.
    let bytes = std::fs::read(&last).expect("read");
    let cut = dir.path().join("cut.ckpt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let (digits_wasm, cfg, _) = setup(dir.path());
    let truncated =
        lthost(dir.path(), &["fit", &digits_wasm, "--config", &cfg, "--ckpt-path", cut.to_str().expect("utf-8")]);
    truncated.assert_fails_with(&["cut.ckpt", "corrupt or truncated"]);
}
