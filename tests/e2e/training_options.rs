//! The Trainer's training options against Lightning 2.6 itself, by losses, not counts:
//! gradient clipping by norm and by value, gradient accumulation (the loss divided by n, the
//! last window of each epoch partial), both together, and ReduceLROnPlateau monitoring
//! `train_loss` at the epoch and at the step interval (the learning rate of every step as
//! well). Lightning's ParityModuleRNN with SGD (tests/reference/training_options_reference.py);
//! the `train_loss` and `lr` that lthost's metrics.csv logs must be those Lightning's
//! CSVLogger logs, bit for bit, and the optimizer steps as many.

use crate::common::{column, read_metrics, repo_root};
use crate::parity::fit_logging_every_step;

fn reference() -> serde_json::Value {
    let path = repo_root().join("tests/reference/training_options.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("valid reference JSON")
}

/// `--set trainer.<key>=<value>` for each of the case's Trainer arguments.
fn trainer_args(trainer: &serde_json::Value) -> Vec<String> {
    let mut args = Vec::new();
    for (k, v) in trainer.as_object().expect("trainer arguments") {
        args.push("--set".to_string());
        args.push(format!("trainer.{k}={v}"));
    }
    args
}

/// `got` equals `want` value for value. Losses are float32 values: compared as float32
/// (serde_json's default float parser can land one f64 ulp off the JSON's digits, never a
/// float32 ulp). Learning rates are float64 values: equal to that one ulp.
fn exact(name: &str, what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}: the number of steps logging {what}");
    for (step, (g, w)) in got.iter().zip(want).enumerate() {
        let same = if what == "lr" { (g - w).abs() <= f64::EPSILON * w.abs() } else { *g as f32 == *w as f32 };
        assert!(same, "{name}, step {step}: {what} {g} in lthost, {w} in Lightning");
    }
}

#[test]
fn clipping_accumulation_and_plateau_train_as_in_lightning() {
    let reference = reference();
    let threads = reference["threads"].to_string();
    let cases = reference["cases"].as_object().expect("cases");
    assert!(cases.len() >= 6, "the reference has every case");
    for (name, case) in cases {
        let hparams = case["hparams"].to_string();
        let epochs = case["epochs"].to_string();
        for (seed, want) in case["runs"].as_object().expect("runs") {
            let label = format!("{name} (seed {seed})");
            let dir = tempfile::tempdir().expect("tempdir");
            let mut extra = vec!["--hparams".to_string(), hparams.clone()];
            extra.extend(trainer_args(&case["trainer"]));
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let run = fit_logging_every_step(dir.path(), "parity-rnn", seed, &epochs, &threads, &extra);
            assert!(run.ok(), "{label} failed:\n{}", run.stderr);
            assert!(
                run.stdout.contains(&format!("global steps {})", want["global_step"])),
                "{label}: Lightning made {} optimizer steps:\n{}",
                want["global_step"],
                run.stdout
            );
            let metrics = read_metrics(&dir.path().join("lightning_logs/version_0"));
            let logged = |k: &str| -> Vec<f64> {
                let values = want["logged"][k].as_array().expect("logged values");
                values.iter().map(|v| v.as_f64().expect("a number")).collect()
            };
            exact(&label, "train_loss", &column(&metrics, "train_loss"), &logged("train_loss"));
            if case["hparams"]["log_lr"].as_bool() == Some(true) {
                let lrs = logged("lr");
                assert!(lrs.windows(2).any(|w| w[1] < w[0]), "{label}: the plateau reduces the lr in Lightning");
                exact(&label, "lr", &column(&metrics, "lr"), &lrs);
            }
        }
    }
}
