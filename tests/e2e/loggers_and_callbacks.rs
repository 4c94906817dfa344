//! Loggers and callbacks: TensorBoard event files read back by the `tensorboard` package,
//! a logger plugin kept in its directory, a callback plugin that logs and stops a run.

use std::process::Command;

use crate::common::{lthost, plugin, read_metrics, repo_root};

#[test]
fn tensorboard_event_files_read_back_with_tensorboard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("digits-mlp").display().to_string();
    let cfg = repo_root().join("plugins/digits-mlp/run.toml").display().to_string();
    let run = lthost(
        dir.path(),
        &["fit", &wasm, "--config", &cfg, "--max-epochs", "3", "--logger", "csv,tensorboard", "--no-progress-bar"],
    );
    assert!(run.ok(), "{}", run.stderr);
    let log_dir = dir.path().join("lightning_logs/version_0");
    let events: Vec<_> = std::fs::read_dir(&log_dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(events.len(), 1, "one event file");
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/reference/read_tensorboard.py"))
        .arg(&log_dir)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(read["hparams"]["lr"], 0.003);
    assert_eq!(read["hparams"]["hidden"], 128.0);
    // Every CSV value is in TensorBoard at the same step (float32 there).
    let rows = read_metrics(&log_dir);
    let mut checked = 0;
    for key in ["train_loss", "val_acc", "val_loss"] {
        let series = read["scalars"][key].as_array().unwrap_or_else(|| panic!("no `{key}` in {}", read["scalars"]));
        let csv: Vec<(u64, f64)> = rows
            .iter()
            .filter(|r| r.get(key).is_some_and(|v| !v.is_empty()))
            .map(|r| (r["step"].parse().expect("step"), r[key].parse().expect("value")))
            .collect();
        assert_eq!(series.len(), csv.len(), "{key}");
        for (point, (step, value)) in series.iter().zip(&csv) {
            assert_eq!(point[0].as_u64(), Some(*step), "{key}");
            let tb = point[1].as_f64().expect("value");
            assert!((tb - value).abs() <= 1e-6 * value.abs().max(1.0), "{key} at {step}: {tb} vs {value}");
            checked += 1;
        }
    }
    assert!(checked > 10);
}

#[test]
fn a_logger_plugin_writes_only_in_its_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("digits-mlp").display().to_string();
    let logger = plugin("jsonl-logger").display().to_string();
    let cfg = repo_root().join("plugins/digits-mlp/run.toml").display().to_string();
    let run = lthost(
        dir.path(),
        &["fit", &wasm, "--config", &cfg, "--max-epochs", "2", "--logger-plugin", &logger, "--no-progress-bar"],
    );
    assert!(run.ok(), "{}", run.stderr);
    let out = dir.path().join("lightning_logs/version_0/plugins/jsonl-logger");
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics.jsonl");
    let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
    let parsed: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    let (told, metrics): (Vec<_>, Vec<_>) = parsed.iter().partition(|v| v.get("checkpoint").is_some());
    assert_eq!(metrics.len(), rows.len(), "one JSON line per CSV row");
    assert!(metrics[0]["metrics"]["train_loss"].is_number(), "{}", metrics[0]);
    // ModelCheckpoint's `after_save_checkpoint` reached the plugin through the WIT: one call
    // per file written, the last naming the checkpoint the run keeps.
    let kept: Vec<String> = std::fs::read_dir(dir.path().join("lightning_logs/version_0/checkpoints"))
        .expect("checkpoints")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let last = &told.last().expect("after_save_checkpoint was called")["checkpoint"];
    assert_eq!(told.len(), 2, "one save per epoch: {told:?}");
    assert_eq!(kept, [last["best_model_path"].as_str().expect("best")], "{last}");
    assert_eq!(last["saved"], last["best_model_path"], "{last}");
    assert!(std::fs::read_to_string(out.join("hparams.json")).expect("hparams.json").contains("\"lr\":0.003"));
    // Writing anywhere else fails inside the sandbox: the run ends with the logger's error.
    let escape = dir.path().join("escaped.txt");
    let hp = format!(r#"{{"escape_to": "{}"}}"#, escape.display());
    let bad = lthost(
        dir.path(),
        &["fit", &wasm, "--config", &cfg, "--max-epochs", "1", "--logger-plugin", &logger, "--hparams", &hp],
    );
    bad.assert_fails_with(&["logger plugin `jsonl-logger`", "log_hyperparams", "escaped.txt"]);
    assert!(!escape.exists(), "the plugin wrote outside its directory");
}

#[test]
fn a_callback_plugin_logs_and_stops_a_diverging_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("digits-mlp").display().to_string();
    let guard = plugin("loss-guard-callback").display().to_string();
    let cfg = repo_root().join("plugins/digits-mlp/run.toml").display().to_string();
    let calm = lthost(
        dir.path(),
        &[
            "fit",
            &wasm,
            "--config",
            &cfg,
            "--max-epochs",
            "2",
            "--callback",
            &guard,
            "--log-every-n-steps",
            "1",
            "--no-progress-bar",
        ],
    );
    assert!(calm.ok(), "{}", calm.stderr);
    let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
    let checks = crate::common::column(&rows, "guard_checks");
    assert_eq!(checks.len(), 80, "logged on every step");
    assert_eq!(checks.last().copied(), Some(80.0));
    let wild = lthost(
        dir.path(),
        &[
            "fit",
            &wasm,
            "--config",
            &cfg,
            "--max-epochs",
            "20",
            "--callback",
            &guard,
            "--hparams",
            r#"{"lr": 30.0}"#,
            "--no-progress-bar",
        ],
    );
    assert!(wild.ok(), "{}", wild.stderr);
    assert!(
        wild.stdout.contains("`Trainer.fit` stopped: callback `loss-guard-callback`: train_loss"),
        "{}",
        wild.stdout
    );
}

#[test]
fn fit_then_test_logs_the_test_into_the_fits_run() {
    // `lthost fit --test best`: Lightning's `trainer.test(ckpt_path="best")` after the fit on
    // one Trainer (the row's steps and values are compared with Lightning in the unit test
    // `a_test_after_the_fit_logs_into_its_run_as_lightnings`).
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-hparams").display().to_string();
    let run = lthost(dir.path(), &["fit", &wasm, "--max-epochs", "2", "--no-progress-bar", "--test", "best"]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout.contains("Loaded the model weights from") && run.stdout.contains("Test metric"),
        "{}",
        run.stdout
    );
    let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
    let test: Vec<_> = rows.iter().filter(|r| r.get("test_loss").is_some_and(|v| !v.is_empty())).collect();
    assert_eq!(test.len(), 1, "one test row in the fit's metrics.csv: {rows:?}");
    assert_eq!((test[0]["epoch"].as_str(), test[0]["step"].as_str()), ("2", "8"), "at the fit's last epoch and step");
    assert!(!dir.path().join("lightning_logs/version_1").exists(), "no second version");
    // Only a fit goes on to a test.
    let run = lthost(dir.path(), &["validate", &wasm, "--test"]);
    run.assert_fails_with(&["--test follows a fit"]);
}
