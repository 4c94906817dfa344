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

/// `lthost fit` of a quickstart-shaped plugin (`wasm`) in `dir`, then `lthost test` of the
/// checkpoint Lightning tested: every training loss and the test loss as Lightning's (`want`).
/// The checkpoint.
fn fits_then_tests_as_lightning(dir: &std::path::Path, wasm: &str, want: &Value) -> std::path::PathBuf {
    let run = lthost(dir, &["fit", wasm, "--no-progress-bar"]);
    assert!(run.ok(), "{}", run.stderr);
    let log_dir = dir.join("lightning_logs/version_0");
    assert_losses(&column(&read_metrics(&log_dir), "train_loss"), want["losses"].as_array().expect("losses"));
    let ckpt = log_dir.join("checkpoints").join(want["checkpoints"][0].as_str().expect("a checkpoint"));
    assert!(ckpt.exists(), "{}", ckpt.display());
    // `lthost test`: the block runs up to its `trainer.test`, whose DataLoader is the run's;
    // the checkpoint holds the weights Lightning tested after its fit.
    let test = lthost(dir, &["test", wasm, "--ckpt-path", ckpt.to_str().expect("utf-8"), "--no-progress-bar"]);
    assert!(test.ok(), "{}", test.stderr);
    let got = shown_metric(&test.stdout, "test_loss");
    let expected = want["callback_metrics"]["test_loss"].as_f64().expect("test_loss");
    assert!((got - expected).abs() <= 1e-6, "test_loss: lthost {got}, Lightning {expected}");
    ckpt
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
    let ckpt = fits_then_tests_as_lightning(d.path(), wasm, &want);
    let ckpt = ckpt.to_str().expect("utf-8");
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

/// The quickstart with its training code at the file's top level, no `__main__` block (as
/// Lightning's README writes it): `lthost build` takes that code as the block, so the run
/// trains as `python model.py` does (the same losses as lit-quickstart's, too).
#[test]
fn a_file_that_trains_at_its_top_level_trains_as_python_runs_it() {
    let want = reference_of("lit-script");
    assert_eq!(want["losses"], reference_of("lit-quickstart")["losses"]);
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-script");
    fits_then_tests_as_lightning(d.path(), wasm.to_str().expect("utf-8"), &want);
}

/// A tensor made by a top-level line the file's classes read (so not training code) cannot
/// exist at build time: the build fails with the operator and the user's line, not a trap,
/// and writes nothing.
#[test]
fn a_tensor_made_at_the_top_level_fails_the_build_naming_the_line() {
    let d = tempfile::tempdir().expect("tempdir");
    let source = "import torch\nimport lightning as L\nfrom torch import nn\n\nMEAN = torch.tensor([0.5, 0.5])\n\n\n\
                  class LitModel(L.LightningModule):\n    def __init__(self):\n        super().__init__()\n        \
                  self.layer = nn.Linear(2, 1)\n\n    def training_step(self, batch, batch_idx):\n        \
                  return self.layer(batch[0] - MEAN).sum()\n";
    std::fs::write(d.path().join("model.py"), source).expect("write");
    let run = lthost(d.path(), &["build", "model.py", "-o", "model.wasm"]);
    assert!(!run.ok(), "built");
    assert!(run.stderr.contains("torch.tensor at build time"), "{}", run.stderr);
    assert!(
        run.stderr.contains("model.py\", line 5, in <module>\n    MEAN = torch.tensor([0.5, 0.5])"),
        "{}",
        run.stderr
    );
    // The user's frames only: no componentize-py or SDK internals, no Rust backtrace.
    assert!(!run.stderr.contains("<lthost SDK>") && !run.stderr.contains("Stack backtrace"), "{}", run.stderr);
    assert!(!d.path().join("model.wasm").exists());
}

/// Lightning's bug-report shape: a subclass of `lightning.pytorch.demos`' BoringModel,
/// Lightning's BoringDataModule (imported, not defined in the file, made before the model),
/// Lightning's utilities (`grad_norm` logged per step, `rank_zero_only`) and top-level
/// training code: every loss, and every metric's last value, as in Lightning.
#[test]
fn a_boring_model_subclass_with_lightnings_boring_data_module_trains_as_in_lightning() {
    let want = reference_of("lit-demos");
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-demos");
    let run = lthost(d.path(), &["fit", wasm.to_str().expect("utf-8"), "--no-progress-bar"]);
    assert!(run.ok(), "{}", run.stderr);
    let line = "trained 48 steps on rank 0 (prepare_data ran: True)";
    assert!(run.stderr.contains(line) || run.stdout.contains(line), "{}", run.stdout);
    let rows = read_metrics(&d.path().join("lightning_logs/version_0"));
    assert_losses(&column(&rows, "train_loss"), want["losses"].as_array().expect("losses"));
    let metrics = want["callback_metrics"].as_object().expect("metrics");
    assert!(metrics.contains_key("grad_2.0_norm_total") && metrics.contains_key("twice_train_loss"), "{metrics:?}");
    for (name, expected) in metrics {
        let expected = expected.as_f64().expect("a number");
        let got = *column(&rows, name).last().unwrap_or_else(|| panic!("no {name} logged"));
        assert!((got - expected).abs() <= 1e-5 * expected.abs().max(1.0), "{name}: lthost {got}, Lightning {expected}");
    }
}

/// A Lightning file's own callbacks (handed to its Trainer and returned by the module's
/// `configure_callbacks`) run in the plugin as in Lightning: one changes the gradients before
/// each optimizer step (every loss shows it), others read `trainer.callback_metrics`, log
/// through `pl_module.log` and stop the fit with `trainer.should_stop`; the epochs run, every
/// loss and every metric's last value are Lightning's. A resumed run restores a callback's
/// `state_dict` from the checkpoint.
#[test]
fn a_files_own_callbacks_run_in_the_plugin_as_in_lightning() {
    let want = reference_of("lit-callbacks");
    let d = tempfile::tempdir().expect("tempdir");
    let wasm = plugin("lit-callbacks");
    let wasm = wasm.to_str().expect("utf-8");
    let run = lthost(d.path(), &["fit", wasm, "--no-progress-bar"]);
    assert!(run.ok(), "{}", run.stderr);
    let printed = |r: &crate::common::Run, line: &str| r.stdout.contains(line) || r.stderr.contains(line);
    for epoch in 0..3 {
        let line = format!("epoch {epoch} starts after step {}", epoch * 8);
        assert!(printed(&run, &line), "{line}: {}", run.stdout);
    }
    assert!(!printed(&run, "epoch 3 starts"), "should_stop ended the fit: {}", run.stdout);
    let rows = read_metrics(&d.path().join("lightning_logs/version_0"));
    assert_losses(&column(&rows, "train_loss"), want["losses"].as_array().expect("losses"));
    assert_eq!(want["epochs"], 3);
    let metrics = want["callback_metrics"].as_object().expect("metrics");
    for name in ["best_val_loss", "rows_seen", "loss_from_outputs", "marker_epoch"] {
        assert!(metrics.contains_key(name), "{name} in {metrics:?}");
    }
    for (name, expected) in metrics {
        let expected = expected.as_f64().expect("a number");
        let got = *column(&rows, name).last().unwrap_or_else(|| panic!("no {name} logged"));
        assert!((got - expected).abs() <= 1e-5 * expected.abs().max(1.0), "{name}: lthost {got}, Lightning {expected}");
    }
    // Resumed from the last epoch's checkpoint: BestValLoss's state comes back, one more epoch
    // runs (StopAfter stops it again).
    let ckpt = d.path().join("lightning_logs/version_0/checkpoints/epoch=2-step=24.ckpt");
    assert!(ckpt.exists(), "{}", ckpt.display());
    let resumed = lthost(d.path(), &["fit", wasm, "--no-progress-bar", "--ckpt-path", ckpt.to_str().expect("utf-8")]);
    assert!(resumed.ok(), "{}", resumed.stderr);
    let best = metrics["best_val_loss"].as_f64().expect("a number");
    let line = format!("BestValLoss restored: best {best:.6}, worst -inf, 3 losses seen (torch.float32)");
    assert!(printed(&resumed, &line), "{line}: {}", resumed.stdout);
    assert!(printed(&resumed, "epoch 3 starts after step 24"), "{}", resumed.stdout);
    assert!(!printed(&resumed, "epoch 4 starts"), "{}", resumed.stdout);
}
