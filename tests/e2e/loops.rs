//! The Trainer contract: hooks in Lightning's order for fit/validate/test/predict, and the
//! exact counts (steps, validation runs, batches) each loop flag produces. The expected
//! sequences are Lightning's `tests/tests_pytorch/models/test_hooks.py` lists, in call
//! order, less what lthost does in the host (transfer_batch_to_device, backward,
//! optimizer_step, zero_grad, clip_gradients, lr_scheduler_step, the *_dataloader calls,
//! checkpoint hooks) and plus `configure` (the module's `__init__`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use lthost::callbacks::{Callback, HookInfo};
use lthost::config::{EveryNEpochs, FastDevRun, Limit, TrainerConfig};
use lthost::context::{RunContext, Stage};
use lthost::hooks::Hook;
use lthost::module::{DataModule, Module, Optimization};
use lthost::plugin::{self, runtime::Runtime, PluginOptions, WasmPlugin};
use lthost::trainer::Trainer;
use serde_json::{json, Value};
use tch::Tensor;

use crate::common::{column, lthost, plugin as plugin_path, read_metrics};

type Log = Rc<RefCell<Vec<String>>>;

/// The module, recording every call the loops make to it.
struct Rec {
    inner: WasmPlugin,
    log: Log,
}

impl Rec {
    fn push(&self, s: &str) {
        self.log.borrow_mut().push(s.to_string());
    }
}

impl Module for Rec {
    fn name(&self) -> &str {
        "hook-recorder"
    }
    fn configure(&mut self, ctx: &mut RunContext, hp: &Value) -> anyhow::Result<Value> {
        self.push("configure");
        self.inner.configure(ctx, hp)
    }
    fn configure_optimizers(&mut self, ctx: &mut RunContext) -> anyhow::Result<Optimization> {
        self.push("configure_optimizers");
        self.inner.configure_optimizers(ctx)
    }
    fn training_step(&mut self, ctx: &mut RunContext, b: &[Tensor], i: u64) -> anyhow::Result<Option<Tensor>> {
        self.push("training_step");
        self.inner.training_step(ctx, b, i)
    }
    fn validation_step(&mut self, ctx: &mut RunContext, b: &[Tensor], i: u64) -> anyhow::Result<()> {
        self.push("validation_step");
        self.inner.validation_step(ctx, b, i)
    }
    fn test_step(&mut self, ctx: &mut RunContext, b: &[Tensor], i: u64) -> anyhow::Result<()> {
        self.push("test_step");
        self.inner.test_step(ctx, b, i)
    }
    fn predict_step(&mut self, ctx: &mut RunContext, b: &[Tensor], i: u64) -> anyhow::Result<Tensor> {
        self.push("predict_step");
        self.inner.predict_step(ctx, b, i)
    }
    fn implemented_hooks(&mut self, ctx: &mut RunContext) -> anyhow::Result<Vec<Hook>> {
        self.inner.implemented_hooks(ctx)
    }
    fn hook(&mut self, ctx: &mut RunContext, hook: Hook, idx: Option<u64>) -> anyhow::Result<i32> {
        self.push(hook.name());
        self.inner.hook(ctx, hook, idx)
    }
}

struct RecCallback(Log);

impl Callback for RecCallback {
    fn name(&self) -> &str {
        "recorder"
    }
    fn on_hook(&mut self, hook: Hook, _info: &HookInfo<'_>) -> anyhow::Result<()> {
        self.0.borrow_mut().push(format!("Callback.{}", hook.name()));
        Ok(())
    }
}

fn quiet(cfg: TrainerConfig) -> TrainerConfig {
    TrainerConfig { logger: false, enable_progress_bar: false, enable_model_summary: false, seed: Some(0), accelerator: "cpu".into(), threads: Some(1), ..cfg }
}

enum Entry {
    Fit,
    Eval(Stage),
    Predict,
}

struct Outcome {
    calls: Vec<String>,
    global_step: u64,
    epochs: u64,
    metrics: BTreeMap<String, f64>,
}

impl Outcome {
    fn count(&self, name: &str) -> usize {
        self.calls.iter().filter(|c| *c == name).count()
    }
    /// Validation runs during training (the sanity check excluded).
    fn val_runs(&self) -> usize {
        self.count("on_validation_model_zero_grad")
    }
}

fn record(cfg: TrainerConfig, hparams: Value, entry: Entry) -> anyhow::Result<Outcome> {
    let runtime = Runtime::new()?;
    let wasm = plugin::load(&runtime, &plugin_path("hook-recorder"), &PluginOptions::default())?;
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    let mut module = Rec { inner: wasm.clone(), log: log.clone() };
    let mut data = wasm;
    let mut trainer = Trainer::new(quiet(cfg), None).with_callback(Box::new(RecCallback(log.clone())));
    let (global_step, epochs, metrics) = match entry {
        Entry::Fit => {
            let r = trainer.fit(&mut module, &mut data as &mut dyn DataModule, &hparams)?;
            (r.global_step, r.epochs, r.metrics)
        }
        Entry::Eval(stage) => {
            let m = trainer.evaluate(&mut module, &mut data, &hparams, stage)?;
            (0, 0, m.all)
        }
        Entry::Predict => {
            trainer.predict(&mut module, &mut data, &hparams)?;
            (0, 0, BTreeMap::new())
        }
    };
    let calls = log.borrow().clone();
    Ok(Outcome { calls, global_step, epochs, metrics })
}

fn both(out: &mut Vec<String>, hook: &str) {
    out.push(format!("Callback.{hook}"));
    out.push(hook.to_string());
}

fn eval_batch(out: &mut Vec<String>, noun: &str) {
    out.push("on_before_batch_transfer".into());
    out.push("on_after_batch_transfer".into());
    both(out, &format!("on_{noun}_batch_start"));
    out.push(format!("{noun}_step"));
    both(out, &format!("on_{noun}_batch_end"));
}

fn eval_run(out: &mut Vec<String>, noun: &str, batches: usize, after_training: bool) {
    if after_training {
        out.push("on_validation_model_zero_grad".into());
    }
    out.push(format!("on_{noun}_model_eval"));
    both(out, &format!("on_{noun}_start"));
    both(out, &format!("on_{noun}_epoch_start"));
    for _ in 0..batches {
        eval_batch(out, noun);
    }
    both(out, &format!("on_{noun}_epoch_end"));
    both(out, &format!("on_{noun}_end"));
    out.push(format!("on_{noun}_model_train"));
}

fn train_batch(out: &mut Vec<String>) {
    out.push("on_before_batch_transfer".into());
    out.push("on_after_batch_transfer".into());
    both(out, "on_train_batch_start");
    out.push("training_step".into());
    both(out, "on_before_zero_grad");
    both(out, "on_before_backward");
    both(out, "on_after_backward");
    both(out, "on_before_optimizer_step");
    both(out, "on_train_batch_end");
}

/// `test_trainer_model_hook_system_fit`: max_epochs=1, limit_train_batches=2,
/// limit_val_batches=2, default sanity check (2 steps).
#[test]
fn fit_calls_hooks_in_lightnings_order() {
    let cfg = TrainerConfig { max_epochs: Some(1), limit_train_batches: Limit::Batches(2), limit_val_batches: Limit::Batches(2), ..TrainerConfig::default() };
    let got = record(cfg, json!({}), Entry::Fit).expect("fit");
    let mut want = vec!["configure".to_string()];
    both(&mut want, "setup");
    want.push("configure_model".into());
    want.push("configure_optimizers".into());
    both(&mut want, "on_fit_start");
    want.push("Callback.on_sanity_check_start".into());
    eval_run(&mut want, "validation", 2, false);
    want.push("Callback.on_sanity_check_end".into());
    both(&mut want, "on_train_start");
    both(&mut want, "on_train_epoch_start");
    train_batch(&mut want);
    train_batch(&mut want);
    eval_run(&mut want, "validation", 2, true);
    both(&mut want, "on_train_epoch_end");
    both(&mut want, "on_train_end");
    both(&mut want, "on_fit_end");
    both(&mut want, "teardown");
    assert_eq!(got.calls, want);
    assert_eq!(got.global_step, 2);
}

#[test]
fn validate_and_test_call_hooks_in_lightnings_order() {
    for (stage, noun) in [(Stage::Validate, "validation"), (Stage::Test, "test")] {
        let cfg = TrainerConfig { limit_val_batches: Limit::Batches(2), limit_test_batches: Limit::Batches(2), ..TrainerConfig::default() };
        let got = record(cfg, json!({}), Entry::Eval(stage)).expect("eval");
        let mut want = vec!["configure".to_string()];
        both(&mut want, "setup");
        want.push("configure_model".into());
        eval_run(&mut want, noun, 2, false);
        both(&mut want, "teardown");
        assert_eq!(got.calls, want, "{noun}");
        // limit 0: the loop does not run at all.
        let cfg = TrainerConfig { limit_val_batches: Limit::Batches(0), limit_test_batches: Limit::Batches(0), ..TrainerConfig::default() };
        let got = record(cfg, json!({}), Entry::Eval(stage)).expect("eval");
        assert_eq!(got.calls, vec!["configure", "Callback.setup", "setup", "configure_model", "Callback.teardown", "teardown"]);
    }
}

#[test]
fn predict_calls_hooks_in_lightnings_order() {
    let cfg = TrainerConfig { limit_predict_batches: Limit::Batches(2), ..TrainerConfig::default() };
    let got = record(cfg, json!({}), Entry::Predict).expect("predict");
    let mut want = vec!["configure".to_string()];
    both(&mut want, "setup");
    want.push("configure_model".into());
    want.push("on_predict_model_eval".into());
    both(&mut want, "on_predict_start");
    both(&mut want, "on_predict_epoch_start");
    for _ in 0..2 {
        eval_batch(&mut want, "predict");
    }
    both(&mut want, "on_predict_epoch_end");
    both(&mut want, "on_predict_end");
    both(&mut want, "teardown");
    assert_eq!(got.calls, want);
}

fn fit(cfg: TrainerConfig, hparams: Value) -> Outcome {
    record(cfg, hparams, Entry::Fit).expect("fit")
}

// 16 samples in batches of 4: 4 batches per split unless `samples` says otherwise.

#[test]
fn limit_batches_as_count_and_fraction() {
    let o = fit(TrainerConfig { max_epochs: Some(2), limit_train_batches: Limit::Batches(3), ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.count("training_step"), o.global_step), (6, 6));
    let o = fit(TrainerConfig { max_epochs: Some(2), limit_train_batches: Limit::Fraction(0.5), limit_val_batches: Limit::Fraction(0.25), ..TrainerConfig::default() }, json!({}));
    assert_eq!(o.count("training_step"), 4);
    assert_eq!(o.count("validation_step"), 1 + 2, "1-batch sanity check + 1 batch per epoch");
    let o = fit(TrainerConfig { max_epochs: Some(1), limit_val_batches: Limit::Batches(0), ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.count("validation_step"), o.count("Callback.on_sanity_check_start")), (0, 0));
}

#[test]
fn val_check_interval_fraction_and_batches() {
    let o = fit(TrainerConfig { max_epochs: Some(1), val_check_interval: Limit::Fraction(0.25), ..TrainerConfig::default() }, json!({"samples": 32}));
    assert_eq!(o.val_runs(), 4, "8 batches, every 2");
    let o = fit(TrainerConfig { max_epochs: Some(1), val_check_interval: Limit::Fraction(0.3), ..TrainerConfig::default() }, json!({"samples": 40}));
    assert_eq!(o.val_runs(), 3, "10 batches, every 3, none at the end");
    let o = fit(TrainerConfig { max_epochs: Some(1), val_check_interval: Limit::Batches(3), ..TrainerConfig::default() }, json!({"samples": 32}));
    assert_eq!(o.val_runs(), 2);
    let err = record(TrainerConfig { max_epochs: Some(1), val_check_interval: Limit::Batches(9), ..TrainerConfig::default() }, json!({"samples": 32}), Entry::Fit);
    assert!(err.err().expect("refused").to_string().contains("val_check_interval (9)"));
}

#[test]
fn check_val_every_n_epoch_and_none() {
    let o = fit(TrainerConfig { max_epochs: Some(4), check_val_every_n_epoch: EveryNEpochs::Epochs(2), ..TrainerConfig::default() }, json!({}));
    assert_eq!(o.val_runs(), 2);
    let cfg = TrainerConfig { max_epochs: Some(4), check_val_every_n_epoch: EveryNEpochs::Named("none".into()), val_check_interval: Limit::Batches(5), ..TrainerConfig::default() };
    assert_eq!(fit(cfg, json!({})).val_runs(), 3, "16 batches over 4 epochs: after batches 5, 10, 15");
}

#[test]
fn num_sanity_val_steps() {
    let o = fit(TrainerConfig { max_epochs: Some(1), limit_train_batches: Limit::Batches(1), ..TrainerConfig::default() }, json!({}));
    assert_eq!(o.count("validation_step"), 2 + 4);
    let o = fit(TrainerConfig { max_epochs: Some(1), limit_train_batches: Limit::Batches(1), num_sanity_val_steps: -1, ..TrainerConfig::default() }, json!({}));
    assert_eq!(o.count("validation_step"), 4 + 4);
    let o = fit(TrainerConfig { max_epochs: Some(1), limit_train_batches: Limit::Batches(1), num_sanity_val_steps: 0, ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.count("validation_step"), o.count("Callback.on_sanity_check_start")), (4, 0));
}

#[test]
fn fast_dev_run_and_overfit_batches() {
    let o = fit(TrainerConfig { max_epochs: Some(5), fast_dev_run: FastDevRun::Flag(true), ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.count("training_step"), o.count("validation_step"), o.global_step, o.epochs), (1, 1, 1, 1));
    let o = fit(TrainerConfig { fast_dev_run: FastDevRun::Batches(3), ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.count("training_step"), o.count("validation_step"), o.global_step), (3, 3, 3));
    let o = fit(TrainerConfig { max_epochs: Some(2), overfit_batches: Limit::Batches(2), num_sanity_val_steps: 0, ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.count("training_step"), o.count("validation_step")), (4, 4));
}

#[test]
fn accumulate_grad_batches_steps_every_n_and_at_epoch_end() {
    let o = fit(TrainerConfig { max_epochs: Some(2), accumulate_grad_batches: 3, ..TrainerConfig::default() }, json!({"samples": 32}));
    assert_eq!(o.count("training_step"), 16);
    assert_eq!(o.global_step, 6, "ceil(8 / 3) steps per epoch");
    assert_eq!(o.count("on_before_optimizer_step"), 6);
    assert_eq!(o.count("on_before_zero_grad"), 6, "at batches 0, 3, 6 of each epoch");
    assert_eq!(o.count("on_before_backward"), 16);
}

#[test]
fn max_steps_min_steps_min_epochs_and_max_time() {
    let o = fit(TrainerConfig { max_steps: 5, ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.global_step, o.epochs), (5, 2));
    let o = fit(TrainerConfig { max_time: Some("00:00:00:00".into()), ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.count("training_step"), o.epochs), (0, 0), "out of time before the first batch");
    let o = fit(TrainerConfig { max_time: Some("00:00:00:00".into()), min_epochs: Some(2), ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.global_step, o.epochs), (8, 2));
    let o = fit(TrainerConfig { max_time: Some("00:00:00:00".into()), min_steps: Some(6), ..TrainerConfig::default() }, json!({}));
    assert_eq!((o.global_step, o.epochs), (6, 2));
}

#[test]
fn on_train_batch_start_minus_one_skips_the_rest_of_the_epoch() {
    let o = fit(TrainerConfig { max_epochs: Some(3), ..TrainerConfig::default() }, json!({"skip_at": 1}));
    assert_eq!((o.count("training_step"), o.global_step, o.epochs), (3, 3, 3));
    assert_eq!(o.count("on_train_epoch_end"), 3);
}

#[test]
fn self_log_follows_lightnings_rules() {
    let ok = fit(TrainerConfig { max_epochs: Some(1), ..TrainerConfig::default() }, json!({"log_in": "OnTrainEpochEnd"}));
    assert_eq!(ok.metrics.get("from_hook"), Some(&1.0));
    let err = record(TrainerConfig { max_epochs: Some(1), ..TrainerConfig::default() }, json!({"log_in": "OnFitStart"}), Entry::Fit);
    let msg = format!("{:#}", err.err().expect("refused"));
    assert!(msg.contains("inside `on_fit_start`") && msg.contains("hook-recorder"), "{msg}");
}

#[test]
fn schedulers_step_inside_the_loop() {
    let o = fit(TrainerConfig { max_epochs: Some(3), ..TrainerConfig::default() }, json!({"scheduler": "step"}));
    assert!((o.metrics["lr"] - 0.025).abs() < 1e-9, "StepLR(1, 0.5) over 3 epochs: lr seen in epoch 2 is 0.1/4, got {}", o.metrics["lr"]);
    let o = fit(TrainerConfig { max_epochs: Some(3), ..TrainerConfig::default() }, json!({"scheduler": "plateau"}));
    assert!(o.metrics.contains_key("val_loss"));
    let err = record(TrainerConfig { max_epochs: Some(2), limit_val_batches: Limit::Batches(0), ..TrainerConfig::default() }, json!({"scheduler": "plateau"}), Entry::Fit);
    assert!(format!("{:#}", err.err().expect("refused")).contains("`val_loss` which is not available"));
}

#[test]
fn gradient_clipping_runs() {
    for alg in ["norm", "value"] {
        let o = fit(TrainerConfig { max_epochs: Some(1), gradient_clip_val: Some(0.01), gradient_clip_algorithm: alg.into(), ..TrainerConfig::default() }, json!({}));
        assert_eq!(o.global_step, 4);
    }
}

#[test]
fn log_every_n_steps_writes_lightnings_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = lthost(
        dir.path(),
        &["fit", plugin_path("hook-recorder").to_str().expect("utf-8"), "--max-epochs", "2", "--log-every-n-steps", "2", "--seed", "0", "--no-progress-bar"],
    );
    assert!(run.ok(), "{}", run.stderr);
    let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
    let steps: Vec<f64> = rows.iter().filter(|r| r.get("train_loss").is_some_and(|v| !v.is_empty())).map(|r| r["step"].parse().expect("step")).collect();
    assert_eq!(steps, vec![1.0, 3.0, 5.0, 7.0]);
    let val_steps: Vec<f64> = rows.iter().filter(|r| r.get("val_loss").is_some_and(|v| !v.is_empty())).map(|r| r["step"].parse().expect("step")).collect();
    assert_eq!(val_steps, vec![3.0, 7.0]);
}

#[test]
fn gan_trains_with_manual_optimization() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = lthost(
        dir.path(),
        &["fit", plugin_path("gan").to_str().expect("utf-8"), "--max-epochs", "30", "--log-every-n-steps", "1", "--seed", "0", "--no-progress-bar"],
    );
    assert!(run.ok(), "{}", run.stderr);
    let dist = column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "dist");
    assert_eq!(dist.len(), 30 * 16);
    let first = dist[0];
    let last: f64 = dist[dist.len() - 16..].iter().sum::<f64>() / 16.0;
    assert!(first > 1.5 && last < 1.0, "generated mean distance: first {first}, last epoch {last}");
    assert!(run.stdout.contains("global steps 960"), "two optimizer steps per batch");
}
