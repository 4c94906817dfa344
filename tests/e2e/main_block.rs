//! A Lightning file's `__main__` block as its plugin's defaults: `lthost build` keeps what
//! the block gives Lightning (seed, argparse defaults, the module's and data module's
//! arguments, the Trainer's, its callbacks and logger), so that a plain `lthost fit` trains
//! as `python model.py` does (tests/reference/main_block_reference.py runs the block in
//! Lightning 2.6.6); the block's paths are not taken; the run's settings go over the rest.

use serde_json::Value;

use crate::common::{column, lthost, plugin, read_metrics, repo_root};

fn reference_of(file: &str) -> Value {
    let path = repo_root().join("tests/reference/main_block.json");
    let text = std::fs::read_to_string(&path).expect("run `make reference` (main_block.json)");
    let all: Value = serde_json::from_str(&text).expect("json");
    all[file].clone()
}

fn reference() -> Value {
    reference_of("lit-main")
}

fn assert_losses(got: &[f64], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "steps: {got:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let w = w.as_f64().expect("a loss");
        assert!((g - w).abs() <= 1e-5, "step {i}: lthost {g}, Lightning {w}");
    }
}

#[test]
fn a_plain_fit_trains_as_python_runs_the_files_main_block() {
    let want = reference();
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-main");
    let run = lthost(d.path(), &["fit", wasm.to_str().expect("utf-8"), "--no-progress-bar"]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stderr.contains("plugin `lit-main`'s defaults (its file's __main__ block"), "{}", run.stderr);
    // The logger's name is the file's; its save_dir ("logs"), the Trainer's default_root_dir
    // ("runs") and ModelCheckpoint's dirpath ("checkpoints") are paths, which a plugin does not choose.
    let log_dir = d.path().join(want["logger_name"].as_str().expect("a name")).join("version_0");
    let rows = read_metrics(&log_dir);
    assert_losses(&column(&rows, "train_loss"), want["losses"].as_array().expect("losses"));
    let mut columns: Vec<String> = rows.first().expect("a row").keys().cloned().collect();
    columns.sort();
    assert_eq!(serde_json::to_value(&columns).expect("json"), want["columns"]);
    let mut checkpoints: Vec<String> = std::fs::read_dir(log_dir.join("checkpoints"))
        .expect("the checkpoints")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    checkpoints.sort();
    assert_eq!(serde_json::to_value(&checkpoints).expect("json"), want["checkpoints"]);
    for path in ["logs", "runs", "checkpoints"] {
        assert!(!d.path().join(path).exists(), "{path} was written");
    }
    // What the block gave is in the manifest, for `lthost inspect` to show.
    let shown = lthost(d.path(), &["inspect", wasm.to_str().expect("utf-8")]);
    assert!(
        shown.stdout.contains("defaults    data.batch_size=16") && shown.stdout.contains("seed_everything=11"),
        "{}",
        shown.stdout
    );
}

#[test]
fn the_runs_config_and_flags_go_over_the_files_defaults() {
    let want = reference();
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-main");
    std::fs::write(d.path().join("run.toml"), "[trainer]\nloggers = [\"csv\"]\n\n[loggers.csv]\nname = \"mine\"\n")
        .expect("write");
    let run = lthost(
        d.path(),
        &["fit", wasm.to_str().expect("utf-8"), "--config", "run.toml", "--max-epochs", "1", "--no-progress-bar"],
    );
    assert!(run.ok(), "{}", run.stderr);
    let rows = read_metrics(&d.path().join("mine/version_0"));
    let first_epoch: Vec<Value> = want["losses"].as_array().expect("losses")[..8].to_vec();
    assert_losses(&column(&rows, "train_loss"), &first_epoch);
    // A LightningCLI config without seed_everything: the file's seed is LightningCLI's
    // `seed_everything_default` (not LightningCLI's own default, 0).
    let e = tempfile::tempdir().expect("tempdir");
    std::fs::write(e.path().join("config.yaml"), "trainer:\n  max_epochs: 1\n").expect("write");
    let run = lthost(e.path(), &["fit", wasm.to_str().expect("utf-8"), "--config", "config.yaml", "--no-progress-bar"]);
    assert!(run.ok(), "{}", run.stderr);
    assert_losses(&column(&read_metrics(&e.path().join("regressor/version_0")), "train_loss"), &first_epoch);
    // The file's logger table gives way to the run's choice of loggers.
    let run = lthost(
        d.path(),
        &["fit", wasm.to_str().expect("utf-8"), "--logger", "tensorboard", "--max-epochs", "1", "--no-progress-bar"],
    );
    assert!(run.ok(), "{}", run.stderr);
    // --no-plugin-defaults: lthost's own settings (its default logger's directory, no seed of the file's).
    let f = tempfile::tempdir().expect("tempdir");
    let run = lthost(
        f.path(),
        &["fit", wasm.to_str().expect("utf-8"), "--no-plugin-defaults", "--max-epochs", "1", "--no-progress-bar"],
    );
    assert!(run.ok(), "{}", run.stderr);
    assert!(!run.stderr.contains("defaults (its file's __main__ block"), "{}", run.stderr);
    assert!(f.path().join("lightning_logs/version_0/metrics.csv").exists() && !f.path().join("regressor").exists());
}

/// The metric `name`'s value in an evaluation's results table (`test_loss   0.0872...`).
fn shown_metric(stdout: &str, name: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {stdout}"))
}

/// Lightning's quickstart shape: the block makes the data, DataLoaders and a model with
/// arguments no reader can take, and hands them to `trainer.fit` and `trainer.test`; the
/// plugin runs the block up to the run's stage's call.
#[test]
fn the_dataloaders_a_main_block_hands_the_trainer_are_the_runs() {
    let want = reference_of("lit-quickstart");
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-quickstart");
    let wasm = wasm.to_str().expect("utf-8");
    let run = lthost(d.path(), &["fit", wasm, "--no-progress-bar"]);
    assert!(run.ok(), "{}", run.stderr);
    let log_dir = d.path().join("lightning_logs/version_0");
    assert_losses(&column(&read_metrics(&log_dir), "train_loss"), want["losses"].as_array().expect("losses"));
    let ckpt = log_dir.join("checkpoints").join(want["checkpoints"][0].as_str().expect("a checkpoint"));
    assert!(ckpt.exists(), "{}", ckpt.display());
    // `lthost test`: the block runs up to its `trainer.test`, whose DataLoader is the run's;
    // the checkpoint holds the weights Lightning tested after its fit.
    let ckpt = ckpt.to_str().expect("utf-8");
    let test = lthost(d.path(), &["test", wasm, "--ckpt-path", ckpt, "--no-progress-bar"]);
    assert!(test.ok(), "{}", test.stderr);
    let got = shown_metric(&test.stdout, "test_loss");
    let expected = want["callback_metrics"]["test_loss"].as_f64().expect("test_loss");
    assert!((got - expected).abs() <= 1e-6, "test_loss: lthost {got}, Lightning {expected}");
    // `lthost validate`: the block makes no `trainer.validate`; its `trainer.fit`'s val_dataloaders.
    let validate = lthost(d.path(), &["validate", wasm, "--ckpt-path", ckpt, "--no-progress-bar"]);
    assert!(validate.ok(), "{}", validate.stderr);
    assert!(shown_metric(&validate.stdout, "val_loss").is_finite());
    // The run's hyper-parameters go over the block's arguments; its seed over the block's.
    let over =
        lthost(d.path(), &["fit", wasm, "--hparams", r#"{"lr": 0.01}"#, "--max-epochs", "1", "--no-progress-bar"]);
    assert!(over.ok(), "{}", over.stderr);
    assert!(over.stdout.contains("Optimizer: Adam (lr=0.01)"), "{}", over.stdout);
    let e = tempfile::tempdir().expect("tempdir");
    let reseeded = lthost(e.path(), &["fit", wasm, "--seed", "6", "--max-epochs", "1", "--no-progress-bar"]);
    assert!(reseeded.ok(), "{}", reseeded.stderr);
    let first = column(&read_metrics(&e.path().join("lightning_logs/version_0")), "train_loss")[0];
    let lightning_first = want["losses"][0].as_f64().expect("a loss");
    assert!((first - lightning_first).abs() > 1e-4, "--seed 6 trained as seed 5: {first}");
}
