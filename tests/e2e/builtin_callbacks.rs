//! The built-in callbacks against Lightning (tests/reference/callbacks_reference.py):
//! LearningRateMonitor's logged values, GradientAccumulationScheduler's optimizer steps,
//! the learning rate finder's record and suggestion; and the progress bar on a pipe and a
//! pseudo-terminal, the monitors' columns, the model summary, the Timer's checkpoint state,
//! the grad-norm callback plugin against torch's gradient norms, logger finalize.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{column, lthost, plugin, read_metrics, repo_root};

fn reference() -> Value {
    let path = repo_root().join("tests/reference/callbacks.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter().map(|(k, v)| format!("\"{k}\" = {}", toml_value(v))).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn table(name: &str, v: &Value) -> String {
    let mut out = format!("[{name}]\n");
    for (k, v) in v.as_object().expect("an object") {
        out.push_str(&format!("{k} = {}\n", toml_value(v)));
    }
    out
}

/// A run file for the hook-recording plugin with Lightning's trainer and model arguments.
fn recorder_config(dir: &Path, trainer: &Value, model: &Value, extra: &str) -> String {
    let mut text = table("trainer", trainer);
    text.push_str(
        "num_sanity_val_steps = 0\nseed = 0\nthreads = 1\nenable_checkpointing = false\naccelerator = \"cpu\"\n",
    );
    text.push_str(extra);
    text.push_str(&table("hparams", model));
    let p = dir.join("run.toml");
    std::fs::write(&p, text).expect("run file");
    p.display().to_string()
}

fn lr_entries(rows: &[std::collections::HashMap<String, String>]) -> BTreeSet<(u64, String, String)> {
    let mut out = BTreeSet::new();
    for r in rows {
        let step: u64 = r["step"].parse().expect("step");
        for (k, v) in r {
            if k.starts_with("lr-") && !v.is_empty() {
                out.insert((step, k.clone(), format!("{:.12}", v.parse::<f64>().expect("a number"))));
            }
        }
    }
    out
}

#[test]
fn learning_rate_monitor_logs_what_lightning_logs() {
    let reference = reference();
    let cases = reference["lr_monitor"].as_object().expect("cases");
    assert!(cases.len() >= 4);
    for (name, case) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut trainer = case["trainer"].clone();
        trainer["log_every_n_steps"] = case["log_every_n_steps"].clone();
        let cfg = recorder_config(dir.path(), &trainer, &case["model"], &table("callbacks.lr_monitor", &case["args"]));
        let run = lthost(
            dir.path(),
            &["fit", plugin("hook-recorder").to_str().expect("utf-8"), "--config", &cfg, "--no-progress-bar"],
        );
        assert!(run.ok(), "{name}: {}", run.stderr);
        let got = lr_entries(&read_metrics(&dir.path().join("lightning_logs/version_0")));
        let mut want = BTreeSet::new();
        for row in case["lr_rows"].as_array().expect("rows") {
            let step = row["step"].as_u64().expect("step");
            for (k, v) in row.as_object().expect("row") {
                if k != "step" {
                    want.insert((step, k.clone(), format!("{:.12}", v.as_f64().expect("a value"))));
                }
            }
        }
        assert_eq!(got, want, "{name}: (step, name, value) logged by LearningRateMonitor");
    }
}

fn global_steps(stdout: &str) -> u64 {
    let line = stdout.lines().find(|l| l.contains("global steps")).expect("a summary line with the global steps");
    line.split("global steps ").nth(1).and_then(|s| s.trim_end_matches(')').trim().parse().ok()).expect("a step count")
}

#[test]
fn gradient_accumulation_scheduler_steps_like_lightning() {
    let reference = reference();
    for (name, case) in reference["accumulation"].as_object().expect("cases") {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra =
            format!("[callbacks.gradient_accumulation_scheduler]\nscheduling = {}\n", toml_value(&case["scheduling"]));
        let cfg = recorder_config(dir.path(), &case["trainer"], &case["model"], &extra);
        let run = lthost(
            dir.path(),
            &["fit", plugin("hook-recorder").to_str().expect("utf-8"), "--config", &cfg, "--no-progress-bar"],
        );
        assert!(run.ok(), "{name}: {}", run.stderr);
        assert_eq!(global_steps(&run.stdout), case["global_step"].as_u64().expect("steps"), "{name}");
    }
    // Lightning refuses the scheduler together with the Trainer's own accumulation.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = recorder_config(
        dir.path(),
        &serde_json::json!({"max_epochs": 1, "accumulate_grad_batches": 2}),
        &serde_json::json!({}),
        "[callbacks.gradient_accumulation_scheduler]\nscheduling = { \"0\" = 2 }\n",
    );
    let run = lthost(dir.path(), &["fit", plugin("hook-recorder").to_str().expect("utf-8"), "--config", &cfg]);
    run.assert_fails_with(&["GradientAccumulationScheduler", "accumulate_grad_batches"]);
}

#[test]
fn lr_find_is_skipped_with_a_warning_under_fast_dev_run() {
    // Lightning's Tuner.lr_find and scale_batch_size return None with a warning when
    // fast_dev_run is set (tests/reference/callbacks_reference.py `fast_dev_run_skips`, their
    // words): `lthost lr-find` writes nothing, `lthost fit --lr-find` / `--scale-batch-size`
    // train without a search.
    let want = reference();
    let said = |search: &str| {
        want["fast_dev_run_skips"][search]["warned"][0].as_str().expect("Lightning's warning").to_string()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("parity-rnn");
    let args = ["lr-find", wasm.to_str().expect("utf-8"), "--output", "out", "--set", "trainer.fast_dev_run=true"];
    let run = lthost(dir.path(), &args);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stderr.contains(&said("lr_find")), "{}", run.stderr);
    assert!(!dir.path().join("out").exists(), "nothing written");
    let recorder = plugin("hook-recorder");
    for (flag, search) in [("--lr-find", "lr_find"), ("--scale-batch-size", "scale_batch_size")] {
        let d = tempfile::tempdir().expect("tempdir");
        let args =
            ["fit", recorder.to_str().expect("utf-8"), flag, "--no-progress-bar", "--set", "trainer.fast_dev_run=true"];
        let run = lthost(d.path(), &args);
        assert!(run.ok(), "{flag}: {}", run.stderr);
        assert!(run.stderr.contains(&said(search)), "{flag}: {}", run.stderr);
    }
}

#[test]
fn lr_find_twice_gives_the_same_results_and_a_failed_search_leaves_no_file() {
    // docs/lightning-tests/tuner.md row 14 (test_multiple_lr_find_calls_gives_same_results:
    // max_epochs 2, limit_train 10, limit_val 2): two searches, the same numbers, each longer
    // than 10 points.
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("parity-rnn");
    let w = wasm.to_str().expect("utf-8");
    let mut seen = Vec::new();
    for out in ["a", "b"] {
        let args = [
            "lr-find",
            w,
            "--seed",
            "3",
            "--output",
            out,
            "--set",
            "trainer.max_epochs=2",
            "--set",
            "trainer.limit_train_batches=10",
            "--set",
            "trainer.limit_val_batches=2",
            "--early-stop-threshold",
            "none",
        ];
        let run = lthost(dir.path(), &args);
        assert!(run.ok(), "{}", run.stderr);
        let text = std::fs::read_to_string(dir.path().join(out).join("lr_find.json")).expect("lr_find.json");
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert!(v["lr"].as_array().expect("lrs").len() > 10, "{text}");
        seen.push(text);
    }
    assert_eq!(seen[0], seen[1], "two searches, one result");
    // Row 2 (test_model_reset_correctly, its file half): a search leaves only its results, no
    // checkpoint of the weights it set aside.
    let mut left: Vec<String> = walkdir(dir.path());
    left.sort();
    assert_eq!(left, ["a", "a/lr_find.json", "a/lr_find.png", "b", "b/lr_find.json", "b/lr_find.png"]);
    // Row 25 (test_lr_finder_checkpoint_cleanup_on_error): a training_step that fails ends the
    // search with its error, and nothing is left behind (lthost writes no checkpoint for the
    // search, and lr_find.json only on success).
    let failed = tempfile::tempdir().expect("tempdir");
    let faulty = plugin("faulty");
    let args = ["lr-find", faulty.to_str().expect("utf-8"), "--output", "out", "--hparams", r#"{"fault": "matmul"}"#];
    let run = lthost(failed.path(), &args);
    run.assert_fails_with(&["training_step"]);
    let left: Vec<_> = std::fs::read_dir(failed.path()).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
}

#[test]
fn lr_find_records_and_suggests_what_lightning_does() {
    let reference = reference();
    let cases = [
        ("exponential", "parity-rnn", vec!["--seed", "0"]),
        (
            "linear_40",
            "parity-rnn",
            vec!["--seed", "1", "--mode", "linear", "--num-training", "40", "--min-lr", "1e-4", "--max-lr", "0.5"],
        ),
        (
            "accumulate_2",
            "parity-rnn",
            vec!["--seed", "2", "--num-training", "25", "--set", "trainer.accumulate_grad_batches=2"],
        ),
        ("no_early_stop", "parity-rnn", vec!["--seed", "3", "--num-training", "60", "--early-stop-threshold", "none"]),
        (
            "threshold_0",
            "parity-rnn",
            vec!["--seed", "4", "--num-training", "30", "--set", "lr_find.early_stop_threshold=0"],
        ),
        (
            "max_time_0",
            "parity-rnn",
            vec!["--seed", "5", "--num-training", "20", "--set", "trainer.max_time=\"00:00:00:00\""],
        ),
        (
            "downward",
            "parity-rnn",
            vec![
                "--seed",
                "6",
                "--num-training",
                "20",
                "--min-lr",
                "0.5",
                "--max-lr",
                "1e-4",
                "--early-stop-threshold",
                "none",
            ],
        ),
        ("one_step", "parity-rnn", vec!["--seed", "7", "--num-training", "1"]),
        (
            "mode_case",
            "parity-rnn",
            vec!["--seed", "8", "--mode", "Linear", "--num-training", "20", "--min-lr", "1e-3", "--max-lr", "0.1"],
        ),
        (
            "adagrad_linear",
            "parity-rnn",
            vec![
                "--seed",
                "9",
                "--mode",
                "linear",
                "--num-training",
                "40",
                "--min-lr",
                "1e-4",
                "--max-lr",
                "0.5",
                "--hparams",
                r#"{"optimizer": "adagrad"}"#,
            ],
        ),
        // tuner.md row 20: training_step returns None at global steps 5, 12 and 17 (NaN there).
        (
            "none_output",
            "hook-recorder",
            vec![
                "--seed",
                "0",
                "--num-training",
                "20",
                "--early-stop-threshold",
                "none",
                "--hparams",
                r#"{"none_at": [5, 12, 17]}"#,
            ],
        ),
    ];
    for (name, module, flags) in cases {
        let want = &reference["lr_find"][name];
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = vec![
            "lr-find".into(),
            plugin(module).to_str().expect("utf-8").to_string(),
            "--threads".into(),
            "1".into(),
            "--accelerator".into(),
            "cpu".into(),
            "--output".into(),
            "out".into(),
        ];
        args.extend(flags.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = lthost(dir.path(), &args);
        assert!(run.ok(), "{name}: {}", run.stderr);
        let got: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/lr_find.json")).expect("lr_find.json"))
                .expect("JSON");
        let vec = |v: &Value| -> Vec<f64> {
            v.as_array().expect("array").iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
        };
        let (lr, want_lr) = (vec(&got["lr"]), vec(&want["lr"]));
        assert_eq!(lr.len(), want_lr.len(), "{name}: steps recorded");
        for (i, (a, b)) in lr.iter().zip(&want_lr).enumerate() {
            assert!((a - b).abs() <= 1e-12 * b.abs(), "{name} step {i}: lr {a} vs Lightning {b}");
        }
        // A step whose training_step returned None records NaN (lr_find.json's null; the
        // reference's "nan") on both sides.
        for (i, (a, b)) in vec(&got["loss"]).iter().zip(vec(&want["loss"])).enumerate() {
            let same = (a - b).abs() <= 1e-5 * b.abs().max(1.0) || (a.is_nan() && b.is_nan());
            assert!(same, "{name} step {i}: smoothed loss {a} vs Lightning {b}");
        }
        assert_eq!(got["suggestion"].as_f64(), want["suggestion"].as_f64(), "{name}: suggested lr");
        if want["suggestion"].is_number() {
            assert!(run.stdout.contains("suggested lr ="), "{}", run.stdout);
        }
        assert_eq!(got["seed"].as_u64(), flags.get(1).and_then(|s| s.parse().ok()), "{name}: the seed in lr_find.json");
        let png = std::fs::read(dir.path().join("out/lr_find.png")).expect("lr_find.png");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2000, "a PNG plot");
    }
}

/// Runs lthost with stdout on a pseudo-terminal; returns what the terminal received.
fn run_in_pty(cwd: &Path, args: &[&str]) -> String {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the given locals; the name, termios and
    // window size are optional and passed as null.
    let rc =
        unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = Command::new(env!("CARGO_BIN_EXE_lthost"))
        .env("LTHOST_TRUSTED_KEYS", crate::common::trusted_keys())
        .env("LTHOST_CACHE_DIR", crate::common::component_cache())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .spawn()
        .expect("lthost starts");
    let mut out = Vec::new();
    let mut reader = std::fs::File::from(master);
    let mut buf = [0u8; 4096];
    // The read fails with EIO once the child has closed the terminal.
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let status = child.wait().expect("lthost ends");
    assert!(status.success(), "lthost failed in a terminal: {}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn progress_bar_redraws_on_a_terminal_and_prints_lines_on_a_pipe() {
    let wasm = plugin("digits-mlp").display().to_string();
    let cfg = repo_root().join("plugins/digits-mlp/run.toml").display().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pb.toml"), "[progress_bar]\nevery_n_steps = 10\n").expect("write");
    // A pipe: a line every 10 batches, one per validation run and epoch end, no control characters.
    let args = ["fit", &wasm, "--config", &cfg, "--max-epochs", "2", "--seed", "0", "--logger", "csv"];
    let run = lthost(dir.path(), &args);
    assert!(run.ok(), "{}", run.stderr);
    assert!(!run.stdout.contains('\r') && !run.stdout.contains('\x1b'), "control characters on a pipe");
    let pb = dir.path().join("pb.toml").display().to_string();
    let pb_cfg = std::fs::read_to_string(&cfg)
        .expect("run.toml")
        .replace("data_dir = \"", &format!("data_dir = \"{}/", repo_root().join("plugins/digits-mlp").display()));
    std::fs::write(dir.path().join("pb.toml"), format!("{pb_cfg}\n[progress_bar]\nevery_n_steps = 10\n"))
        .expect("write");
    let run = lthost(dir.path(), &["fit", &wasm, "--config", &pb, "--max-epochs", "2", "--seed", "0"]);
    assert!(run.ok(), "{}", run.stderr);
    let epoch0: Vec<&str> =
        run.stdout.lines().filter(|l| l.starts_with("Epoch 0: ")).map(|l| l.split(" [").next().unwrap_or("")).collect();
    assert_eq!(epoch0, vec!["Epoch 0: 10/40", "Epoch 0: 20/40", "Epoch 0: 30/40", "Epoch 0: 40/40"], "{}", run.stdout);
    assert_eq!(
        run.stdout.lines().filter(|l| l.starts_with("Validation DataLoader 0: 9/9")).count(),
        2,
        "one line per validation run"
    );
    // A terminal: redrawn in place, a validation bar below that is removed again.
    let tty = run_in_pty(dir.path(), &["fit", &wasm, "--config", &cfg, "--max-epochs", "3", "--seed", "0"]);
    // indicatif clears the line (`\r\x1b[2K`) and draws the bar in tqdm's layout.
    assert!(tty.contains("\x1b[2KEpoch 0: ") && tty.contains("%|") && tty.contains("40/40 ["), "{tty:?}");
    assert!(tty.contains("Epoch 2: 100%|████████████████████| 40/40 ["), "the last epoch's line kept: {tty:?}");
    assert!(tty.contains("Validation DataLoader 0:   0%|"), "a validation bar: {tty:?}");
    assert!(tty.contains("\x1b[1A"), "two bars redrawn in place (the cursor goes back up): {tty:?}");
    let newlines = tty.matches('\n').count();
    assert!(newlines < 60, "{newlines} lines for 120 training batches: one line per update? {tty:?}");
}

#[test]
fn throughput_and_device_stats_monitors_log_their_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[callbacks.throughput_monitor]\nwindow_size = 3\n[callbacks.device_stats_monitor]\n";
    let cfg = recorder_config(
        dir.path(),
        &serde_json::json!({"max_epochs": 2, "log_every_n_steps": 1}),
        &serde_json::json!({}),
        extra,
    );
    let run = lthost(
        dir.path(),
        &["fit", plugin("hook-recorder").to_str().expect("utf-8"), "--config", &cfg, "--no-progress-bar"],
    );
    assert!(run.ok(), "{}", run.stderr);
    let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
    let samples = column(&rows, "train|samples");
    let batches = column(&rows, "train|batches");
    assert_eq!(samples.len(), 8, "one value per logged step");
    assert!(samples.iter().zip(&batches).all(|(s, b)| *s == 4.0 * b), "batch size 4: {samples:?} {batches:?}");
    let rate = column(&rows, "train|device|samples_per_sec");
    assert!(!rate.is_empty() && rate.iter().all(|r| *r > 0.0), "rates once the window is full: {rate:?}");
    assert!(!column(&rows, "validate|samples").is_empty(), "validation throughput");
    let rss = column(&rows, "DeviceStatsMonitor.on_train_batch_end/cpu_rss_mb");
    assert!(rss.len() == 8 && rss.iter().all(|m| *m > 10.0), "RSS in MB: {rss:?}");
    assert!(!column(&rows, "DeviceStatsMonitor.on_train_batch_start/cpu_vm_percent").is_empty());
    // Device statistics go to the loggers, not to the summary's metrics (as in Lightning).
    assert!(!run.stdout.contains("DeviceStatsMonitor."), "{}", run.stdout);
}

#[test]
fn model_summary_is_lightnings_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = repo_root().join("plugins/digits-mlp/run.toml").display().to_string();
    let run = lthost(
        dir.path(),
        &[
            "fit",
            plugin("digits-mlp").to_str().expect("utf-8"),
            "--config",
            &cfg,
            "--max-epochs",
            "1",
            "--no-progress-bar",
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    for line in [
        "  | Name   | Type   | Params | Mode ",
        "0 | hidden | Linear | 8.3 K  | train",
        "1 | out    | Linear | 1.3 K  | train",
        "9.6 K     Trainable params",
        "0.038     Total estimated model params size (MB)",
        "2         Modules in train mode",
    ] {
        assert!(run.stdout.contains(line), "missing {line:?} in:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("  timer         train "), "the Timer's stage times: {}", run.stdout);
}

#[test]
fn the_timer_keeps_its_clock_in_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = lthost(
        dir.path(),
        &[
            "fit",
            plugin("parity-mlp").to_str().expect("utf-8"),
            "--max-epochs",
            "2",
            "--seed",
            "0",
            "--no-progress-bar",
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    let ckpt = dir.path().join("lightning_logs/version_0/checkpoints/epoch=1-step=10.ckpt");
    let c = lthost::checkpoint::load(&ckpt).expect("a checkpoint");
    let train = c.meta.callbacks["Timer"]["time_elapsed"]["train"].as_f64().expect("the Timer's train clock");
    assert!(train > 0.0 && train < 600.0, "{train}");
}

#[test]
fn grad_norm_callback_logs_torchs_gradient_norms_and_stops_a_diverging_run() {
    let path = repo_root().join("tests/reference/parity.json");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("parity.json")).expect("JSON");
    let want: Vec<f64> = reference["grad_norms"]["parity-mlp"]["0"]
        .as_array()
        .expect("norms")
        .iter()
        .map(|v| v.as_f64().expect("a norm"))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let cb = plugin("grad-norm-callback").display().to_string();
    let run = lthost(
        dir.path(),
        &[
            "fit",
            plugin("parity-mlp").to_str().expect("utf-8"),
            "--seed",
            "0",
            "--max-epochs",
            "4",
            "--threads",
            "1",
            "--log-every-n-steps",
            "1",
            "--accelerator",
            "cpu",
            "--no-progress-bar",
            "--callback",
            &cb,
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
    let got = column(&rows, "grad_norm");
    assert_eq!(got.len(), want.len(), "one norm per step");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.max(1.0), "step {i}: grad norm {g} vs torch {w}");
    }
    assert!(column(&rows, "lr").iter().all(|l| (l - 0.02).abs() < 1e-7), "the optimizer's lr as the callback sees it");
    // A learning rate far too large makes the gradients explode: the callback stops the run.
    let bad = lthost(
        dir.path(),
        &[
            "fit",
            plugin("parity-rnn").to_str().expect("utf-8"),
            "--seed",
            "0",
            "--max-epochs",
            "20",
            "--no-progress-bar",
            "--callback",
            &cb,
            "--hparams",
            "{\"lr\": 1000.0}",
        ],
    );
    assert!(bad.ok(), "{}", bad.stderr);
    assert!(
        bad.stdout.contains("callback `grad-norm-callback` requested a stop") && bad.stdout.contains("diverged"),
        "{}",
        bad.stdout
    );
}

#[test]
fn logger_plugins_are_finalized_with_the_runs_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logger = plugin("jsonl-logger").display().to_string();
    let ok = lthost(
        dir.path(),
        &[
            "fit",
            plugin("parity-mlp").to_str().expect("utf-8"),
            "--max-epochs",
            "1",
            "--no-progress-bar",
            "--logger",
            &format!("csv,{logger}"),
        ],
    );
    assert!(ok.ok(), "{}", ok.stderr);
    let status = std::fs::read_to_string(dir.path().join("lightning_logs/version_0/plugins/jsonl-logger/status"))
        .expect("status");
    assert_eq!(status, "success");
    assert!(dir.path().join("lightning_logs/version_0/hparams.yaml").exists(), "the CSV logger beside the plugin");
    let failed = lthost(
        dir.path(),
        &[
            "fit",
            plugin("faulty").to_str().expect("utf-8"),
            "--max-epochs",
            "1",
            "--logger",
            &logger,
            "--hparams",
            "{\"fault\": \"trap\"}",
        ],
    );
    assert!(!failed.ok());
    let status = std::fs::read_to_string(dir.path().join("lightning_logs/version_1/plugins/jsonl-logger/status"))
        .expect("status");
    assert_eq!(status, "failed");
}

/// Every path under `dir`, relative to it.
fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).expect("under dir").display().to_string());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}
