//! The Trainer contract against Lightning itself: tests/reference/lightning_reference.py
//! runs the `lightning` package with a recording module and callback for the four entry
//! points and every loop flag; here lthost runs its hook-recorder plugin with the same
//! arguments, and the hook sequences and counts (steps, batches, validation runs, epochs)
//! must be equal. Hooks lthost runs in the host (transfer_batch_to_device, backward,
//! optimizer_step, zero_grad, clipping, lr_scheduler_step, *_dataloader, checkpointing) are
//! recorded on neither side.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use lthost::callbacks::early_stopping::EarlyStoppingConfig;
use lthost::callbacks::{Callback, CallbackAction, HookInfo};
use lthost::config::{Limit, TrainerConfig};
use lthost::context::{RunContext, Stage};
use lthost::hooks::Hook;
use lthost::hparams::SavedHparams;
use lthost::module::{DataModule, Module, Optimization};
use lthost::plugin::{self, runtime::Runtime, PluginOptions, WasmPlugin};
use lthost::trainer::Trainer;
use serde_json::{json, Value};
use tch::Tensor;

use crate::common::{column, lthost, plugin as plugin_path, read_metrics, repo_root};

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
    fn configure(&mut self, ctx: &mut RunContext, hp: &Value) -> anyhow::Result<SavedHparams> {
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
    fn on_hook(&mut self, hook: Hook, _info: &HookInfo<'_>) -> anyhow::Result<CallbackAction> {
        self.0.borrow_mut().push(format!("Callback.{}", hook.name()));
        Ok(CallbackAction::default())
    }
}

fn quiet(cfg: TrainerConfig) -> TrainerConfig {
    TrainerConfig {
        logger: false,
        enable_checkpointing: false,
        enable_progress_bar: false,
        enable_model_summary: false,
        seed: Some(0),
        accelerator: "cpu".into(),
        threads: Some(1),
        ..cfg
    }
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
    /// Why fit stopped (empty for evaluation and prediction).
    stop_reason: String,
    /// EarlyStopping's `stopped_epoch` and reason, when configured.
    stopped_epoch: Option<u64>,
    stopping_reason: Option<&'static str>,
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

/// The hook-recorder plugin as the module (recording every call into the log) and as the
/// DataModule.
fn recorder() -> anyhow::Result<(Rec, WasmPlugin, Log)> {
    let runtime = Runtime::new()?;
    let trust = lthost::artifact::trust::TrustPolicy::load(&[crate::common::trusted_keys()], false)?;
    let opts = PluginOptions { trust: std::sync::Arc::new(trust), ..PluginOptions::default() };
    let wasm = plugin::load(&runtime, &plugin_path("hook-recorder"), &opts)?;
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    Ok((Rec { inner: wasm.clone(), log: log.clone() }, wasm, log))
}

fn record(cfg: TrainerConfig, hparams: Value, entry: Entry) -> anyhow::Result<Outcome> {
    record_with(cfg, hparams, entry, None)
}

fn record_with(
    cfg: TrainerConfig,
    hparams: Value,
    entry: Entry,
    early_stopping: Option<EarlyStoppingConfig>,
) -> anyhow::Result<Outcome> {
    // The run seeds and draws from this process's global generator: one at a time.
    let _rng = crate::common::global_rng();
    let (mut module, mut data, log) = recorder()?;
    let mut trainer = Trainer::new(quiet(cfg), None).with_callback(Box::new(RecCallback(log.clone())));
    trainer.early_stopping = early_stopping;
    let (global_step, epochs, metrics, stop_reason, (stopped_epoch, stopping_reason)) = match entry {
        Entry::Fit => {
            let r = trainer.fit(&mut module, &mut data as &mut dyn DataModule, &hparams)?;
            (r.global_step, r.epochs, r.metrics, r.stop_reason, (r.stopped_epoch, r.stopping_reason))
        }
        Entry::Eval(stage) => {
            let m = trainer.evaluate(&mut module, &mut data, &hparams, stage)?;
            (0, 0, m.all, String::new(), (None, None))
        }
        Entry::Predict => {
            trainer.predict(&mut module, &mut data, &hparams)?;
            (0, 0, BTreeMap::new(), String::new(), (None, None))
        }
    };
    let calls = log.borrow().clone();
    Ok(Outcome { calls, global_step, epochs, metrics, stop_reason, stopped_epoch, stopping_reason })
}

fn lightning() -> Value {
    let path = repo_root().join("tests/reference/lightning.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// Lightning's Trainer arguments as lthost's TrainerConfig (same names; None → "none").
fn trainer_config(args: &Value) -> TrainerConfig {
    let mut args = args.clone();
    if let Some(map) = args.as_object_mut() {
        for v in map.values_mut() {
            if v.is_null() {
                *v = json!("none");
            }
        }
    }
    serde_json::from_value(args).expect("Lightning's arguments are lthost's")
}

const COUNTS: &[&str] = &[
    "training_step",
    "validation_step",
    "val_runs",
    "sanity",
    "global_step",
    "epochs",
    "on_before_zero_grad",
    "on_before_optimizer_step",
    "on_before_backward",
    "on_train_epoch_end",
];

fn lthost_counts(o: &Outcome) -> BTreeMap<&'static str, u64> {
    COUNTS
        .iter()
        .map(|&k| {
            let v = match k {
                "val_runs" => o.val_runs() as u64,
                "sanity" => o.count("Callback.on_sanity_check_start") as u64,
                "global_step" => o.global_step,
                "epochs" => o.epochs,
                other => o.count(other) as u64,
            };
            (k, v)
        })
        .collect()
}

/// Every case of lightning.json: lthost's hook sequence (hooks_* cases) and counts equal
/// what Lightning did with the same arguments.
#[test]
fn loops_match_lightning_for_every_flag() {
    let reference = lightning();
    let cases = reference["cases"].as_object().expect("cases");
    assert!(cases.len() >= 100, "the Trainer settings, 3 log_every_n_steps ones and the EarlyStopping ones");
    let mut checked = 0;
    for (name, case) in cases {
        if case["log_every_n_steps"].is_number() {
            continue;
        }
        let entry = match case["entry"].as_str().expect("entry") {
            "fit" => Entry::Fit,
            "validate" => Entry::Eval(Stage::Validate),
            "test" => Entry::Eval(Stage::Test),
            _ => Entry::Predict,
        };
        let is_fit = matches!(entry, Entry::Fit);
        let es: Option<EarlyStoppingConfig> = case
            .get("early_stopping")
            .map(|v| serde_json::from_value(v.clone()).expect("EarlyStopping's arguments are lthost's"));
        let got = record_with(trainer_config(&case["trainer"]), case["model"].clone(), entry, es)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        if name.starts_with("hooks_") || name.starts_with("validate_") {
            let want: Vec<String> =
                case["calls"].as_array().expect("calls").iter().map(|c| c.as_str().expect("str").to_string()).collect();
            assert_eq!(got.calls, want, "{name}: hook sequence differs from Lightning's");
        }
        if is_fit {
            let want: BTreeMap<&str, u64> = COUNTS.iter().map(|&k| (k, case[k].as_u64().expect("count"))).collect();
            assert_eq!(lthost_counts(&got), want, "{name}: {}", case["trainer"]);
            // The names callback_metrics hold for the validation-logged `scripted`: after an
            // evaluation run, epoch values only (a forked one also under its bare name).
            let want: Vec<&str> = case["scripted_callback_metrics"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let got_names: Vec<&str> =
                got.metrics.keys().map(String::as_str).filter(|k| k.starts_with("scripted")).collect();
            assert_eq!(got_names, want, "{name}: callback_metrics");
            // EarlyStopping: where (its stopped_epoch) and why it stopped.
            assert_eq!(got.stopped_epoch, case["stopped_epoch"].as_u64(), "{name}: EarlyStopping's stopped_epoch");
            assert_eq!(
                got.stopping_reason,
                case["stopping_reason"].as_str(),
                "{name}: EarlyStopping's stopping_reason"
            );
            // ... and its message, word for word (numbers as Python prints them).
            if let Some(msg) = case["stopping_reason_message"].as_str() {
                assert_eq!(got.stop_reason, format!("EarlyStopping: {msg}"), "{name}: the stop message");
            }
        }
        checked += 1;
    }
    assert!(checked >= 80);
}

fn fit(cfg: TrainerConfig, hparams: Value) -> Outcome {
    record(cfg, hparams, Entry::Fit).expect("fit")
}

#[test]
fn max_time_stops_the_run_and_says_so() {
    // Lightning's Timer: checked after every batch; the stop is the run's reason, not the
    // epoch limit it never reached.
    let cfg = TrainerConfig { max_epochs: Some(1_000_000), max_time: Some("00:00:00:01".into()), ..Default::default() };
    let out = record(cfg, json!({}), Entry::Fit).expect("fit");
    assert_eq!(out.stop_reason, "`max_time` reached");
    assert!(out.epochs > 1 && out.epochs < 1_000_000, "{} epochs", out.epochs);
    assert_eq!(out.count("on_train_end"), 1);
}

#[test]
fn val_check_interval_beyond_the_epoch_is_refused() {
    let err = record(
        TrainerConfig {
            max_epochs: Some(1),
            val_check_interval: Some(lthost::config::ValCheckInterval::Every(Limit::Batches(9))),
            ..TrainerConfig::default()
        },
        json!({"samples": 32}),
        Entry::Fit,
    );
    assert!(err.err().expect("refused").to_string().contains("val_check_interval (9)"));
}

#[test]
fn self_log_follows_lightnings_rules() {
    let ok =
        fit(TrainerConfig { max_epochs: Some(1), ..TrainerConfig::default() }, json!({"log_in": "OnTrainEpochEnd"}));
    assert_eq!(ok.metrics.get("from_hook"), Some(&1.0));
    let err = record(
        TrainerConfig { max_epochs: Some(1), ..TrainerConfig::default() },
        json!({"log_in": "OnFitStart"}),
        Entry::Fit,
    );
    let msg = format!("{:#}", err.err().expect("refused"));
    assert!(msg.contains("inside `on_fit_start`") && msg.contains("hook-recorder"), "{msg}");
}

#[test]
fn self_log_is_refused_in_the_hooks_where_lightning_refuses_it() {
    // tests/reference/lightning_reference.py `log_sweep()` (Lightning's
    // test_fx_validator_integration, docs/lightning-tests/logging.md row 2): the module calls
    // `self.log` in one hook of fit, test or predict; the run goes on where Lightning's does,
    // and fails with Lightning's words where its does (anywhere in predict: no result
    // collection). Lightning's message adds a hint about `self.logger.experiment`, which
    // plugins do not have.
    let reference = lightning();
    let sweep = &reference["log_sweep"];
    let mut checked = 0;
    for (entry, hooks) in sweep["entries"].as_object().expect("entries") {
        for (hook, want) in hooks.as_object().expect("hooks") {
            let camel: String = hook.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
            let kind = match entry.as_str() {
                "fit" => Entry::Fit,
                "test" => Entry::Eval(Stage::Test),
                _ => Entry::Predict,
            };
            let got = record(trainer_config(&sweep["trainer"]), json!({"log_in": camel}), kind);
            match (got, want.as_str()) {
                (Ok(_), None) => {}
                (Err(e), Some(words)) => {
                    let words = words.split(" HINT:").next().unwrap_or(words);
                    let msg = format!("{e:#}");
                    assert!(msg.contains(words), "{entry} {hook}: {msg}\nLightning: {words}");
                }
                (got, want) => panic!("{entry} {hook}: lthost {:?}, Lightning {want:?}", got.err()),
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked} hooks");
}

#[test]
fn schedulers_step_inside_the_loop() {
    let o = fit(TrainerConfig { max_epochs: Some(3), ..TrainerConfig::default() }, json!({"scheduler": "step"}));
    assert!(
        (o.metrics["lr"] - 0.025).abs() < 1e-9,
        "StepLR(1, 0.5) over 3 epochs: lr seen in epoch 2 is 0.1/4, got {}",
        o.metrics["lr"]
    );
    let o = fit(TrainerConfig { max_epochs: Some(3), ..TrainerConfig::default() }, json!({"scheduler": "plateau"}));
    assert!(o.metrics.contains_key("val_loss"));
    let err = record(
        TrainerConfig { max_epochs: Some(2), limit_val_batches: Limit::Batches(0), ..TrainerConfig::default() },
        json!({"scheduler": "plateau"}),
        Entry::Fit,
    );
    assert!(format!("{:#}", err.err().expect("refused")).contains("`val_loss` which is not available"));
}

#[test]
fn gradient_clipping_runs() {
    for alg in ["norm", "value"] {
        let o = fit(
            TrainerConfig {
                max_epochs: Some(1),
                gradient_clip_val: Some(0.01),
                gradient_clip_algorithm: alg.into(),
                ..TrainerConfig::default()
            },
            json!({}),
        );
        assert_eq!(o.global_step, 4);
    }
}

#[test]
fn log_every_n_steps_writes_lightnings_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = lthost(
        dir.path(),
        &[
            "fit",
            plugin_path("hook-recorder").to_str().expect("utf-8"),
            "--max-epochs",
            "2",
            "--log-every-n-steps",
            "2",
            "--seed",
            "0",
            "--no-progress-bar",
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    let rows = read_metrics(&dir.path().join("lightning_logs/version_0"));
    let steps: Vec<u64> = rows
        .iter()
        .filter(|r| r.get("train_loss").is_some_and(|v| !v.is_empty()))
        .map(|r| r["step"].parse().expect("step"))
        .collect();
    let want: Vec<u64> = lightning()["cases"]["log_every_2"]["train_log_steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|v| v.as_u64().expect("u64"))
        .collect();
    assert_eq!(steps, want, "Lightning's CSVLogger steps");
    let val_steps: Vec<f64> = rows
        .iter()
        .filter(|r| r.get("val_loss").is_some_and(|v| !v.is_empty()))
        .map(|r| r["step"].parse().expect("step"))
        .collect();
    assert_eq!(val_steps, vec![3.0, 7.0]);
}

/// A logger recording what it is given into the hook log.
struct RecLogger(Log, std::path::PathBuf);

impl lthost::loggers::Logger for RecLogger {
    fn name(&self) -> &str {
        "recorder"
    }
    fn version(&self) -> lthost::loggers::Version {
        lthost::loggers::Version::Number(0)
    }
    fn log_dir(&self) -> &std::path::Path {
        &self.1
    }
    fn log_hyperparams(&mut self, _: &Value) -> anyhow::Result<()> {
        Ok(())
    }
    fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> anyhow::Result<()> {
        let keys: Vec<&str> = metrics.keys().map(String::as_str).filter(|k| *k != "epoch").collect();
        self.0.borrow_mut().push(format!("log_metrics {step} {}", keys.join(",")));
        Ok(())
    }
    fn save(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[test]
fn validation_metrics_reach_the_logger_before_on_validation_end() {
    // Lightning's evaluation loop logs the epoch's values (log_eval_end_metrics) before it
    // calls on_validation_end, so a callback there sees them in logged_metrics.
    // The fit seeds and draws from this process's generator: one at a time (without this, the
    // other in-process fits drew from its stream now and then and gave another run's data).
    let _rng = crate::common::global_rng();
    let (mut module, mut data, log) = recorder().expect("hook-recorder");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = TrainerConfig {
        logger: true,
        loggers: vec![],
        max_epochs: Some(1),
        default_root_dir: dir.path().to_path_buf(),
        ..quiet(TrainerConfig::default())
    };
    let mut trainer = Trainer::new(cfg, None);
    let (l, d) = (log.clone(), dir.path().to_path_buf());
    trainer.logger_plugins.push(Box::new(move |_: &std::path::Path, _: &lthost::loggers::Version| {
        Ok(Box::new(RecLogger(l.clone(), d.clone())) as Box<dyn lthost::loggers::Logger>)
    }));
    trainer.fit(&mut module, &mut data as &mut dyn DataModule, &json!({})).expect("fit");
    let calls = log.borrow().clone();
    let end = calls.iter().rposition(|c| c == "on_validation_end").expect("a validation ran");
    let logged =
        calls.iter().rposition(|c| c.starts_with("log_metrics") && c.contains("val_loss")).expect("val_loss logged");
    assert!(logged < end, "val_loss reached the logger after on_validation_end: {calls:?}");
    assert!(calls[logged..end].iter().all(|c| !c.starts_with("on_validation_epoch")), "{calls:?}");
}

/// hook-recorder trained by `lthost fit` with `hparams` (seed 0, logging every
/// `log_every` steps): the rows of its metrics.csv.
fn recorder_rows(epochs: u64, log_every: u64, hparams: &str) -> Vec<std::collections::HashMap<String, String>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = plugin_path("hook-recorder");
    let (epochs, log_every) = (epochs.to_string(), log_every.to_string());
    let args = [
        "fit",
        wasm.to_str().expect("utf-8"),
        "--max-epochs",
        &epochs,
        "--log-every-n-steps",
        &log_every,
        "--seed",
        "0",
        "--no-progress-bar",
        "--hparams",
        hparams,
    ];
    let run = lthost(dir.path(), &args);
    assert!(run.ok(), "{}", run.stderr);
    read_metrics(&dir.path().join("lightning_logs/version_0"))
}

#[test]
fn evaluation_steps_logged_on_step_get_their_rows_as_in_lightning() {
    // Lightning's update_eval_step_metrics: a row per validation batch (`val_loss_step`, no
    // epoch column), its step counting on across the fit's validation runs, and the epoch
    // row (`val_loss_epoch` with the epoch) written before on_validation_end.
    let rows = recorder_rows(2, 1, r#"{"val_on_step": true}"#);
    let got: Vec<Value> = rows
        .iter()
        .filter(|r| r.iter().any(|(k, v)| k.starts_with("val_loss") && !v.is_empty()))
        .map(|r| {
            let mut keys: Vec<&String> =
                r.iter().filter(|(k, v)| k.starts_with("val_loss") && !v.is_empty()).map(|(k, _)| k).collect();
            keys.sort();
            let step: u64 = r["step"].parse().expect("step");
            json!([step, keys, r.get("epoch").is_some_and(|e| !e.is_empty())])
        })
        .collect();
    let want = lightning()["cases"]["val_on_step"]["val_rows"].clone();
    assert_eq!(Value::Array(got), want, "validation rows (step, val_loss columns, has epoch)");
}

#[test]
fn a_logged_step_and_epoch_are_the_rows_step_and_epoch() {
    // Lightning's logger connector: a value logged as `step` becomes the row's step, one
    // logged as `epoch` stays the row's epoch.
    let rows = recorder_rows(1, 2, r#"{"log_step_epoch": true}"#);
    let got: Vec<Value> = rows
        .iter()
        .filter(|r| r.get("train_loss").is_some_and(|v| !v.is_empty()))
        .map(|r| json!([r["step"].parse::<u64>().expect("step"), r["epoch"].parse::<f64>().ok()]))
        .collect();
    assert_eq!(Value::Array(got), lightning()["cases"]["logged_step_and_epoch"]["train_rows"]);
}

#[test]
fn a_skipped_epoch_end_steps_its_schedulers_as_in_lightning() {
    // -1 from on_train_batch_start makes that batch the epoch's last: Lightning steps the
    // epoch's StepLR there, so each epoch trains at half the previous rate.
    let rows = recorder_rows(3, 1, r#"{"skip_at": 1, "scheduler": "step"}"#);
    let got = column(&rows, "lr");
    let want: Vec<f64> = lightning()["cases"]["skip_at_1_step_lr"]["lrs"]
        .as_array()
        .expect("lrs")
        .iter()
        .map(|v| v.as_f64().expect("f64"))
        .collect();
    assert_eq!(got.len(), want.len(), "one training step per epoch");
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-6, "lr per epoch: lthost {got:?}, Lightning {want:?}");
    }
}

#[test]
fn gan_trains_with_manual_optimization() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = lthost(
        dir.path(),
        &[
            "fit",
            plugin_path("gan").to_str().expect("utf-8"),
            "--max-epochs",
            "30",
            "--log-every-n-steps",
            "1",
            "--seed",
            "0",
            "--no-progress-bar",
        ],
    );
    assert!(run.ok(), "{}", run.stderr);
    let dist = column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "dist");
    assert_eq!(dist.len(), 30 * 16);
    let first = dist[0];
    let last: f64 = dist[dist.len() - 16..].iter().sum::<f64>() / 16.0;
    assert!(first > 1.5 && last < 1.0, "generated mean distance: first {first}, last epoch {last}");
    assert!(run.stdout.contains("global steps 960"), "two optimizer steps per batch");
    let lr = column(&read_metrics(&dir.path().join("lightning_logs/version_0")), "g_lr");
    // Logged floats become float32 tensors, as in Lightning.
    assert!(
        (lr[0] / (0.01 * 0.999) - 1.0).abs() < 1e-6 && (lr[479] / (0.01 * 0.999f64.powf(480.0)) - 1.0).abs() < 1e-6,
        "the plugin steps its scheduler: {} .. {}",
        lr[0],
        lr[479]
    );
}

/// Sends itself a "signal" (the binary's handlers set the same flag) after training batch 2.
struct SignalAt(std::sync::Arc<std::sync::atomic::AtomicUsize>, Log);

impl Callback for SignalAt {
    fn name(&self) -> &str {
        "signal-at"
    }
    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> anyhow::Result<CallbackAction> {
        self.1.borrow_mut().push(format!("Callback.{}", hook.name()));
        if hook == Hook::OnTrainBatchEnd && info.batch_idx == Some(2) {
            self.0.store(libc::SIGTERM as usize, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(CallbackAction::default())
    }
}

#[test]
fn a_signal_ends_the_run_with_on_exception_and_no_end_hooks() {
    // Lightning raises SIGTERMException (fit_loop.py `on_advance_end`; KeyboardInterrupt for
    // SIGINT) and `_interrupt` calls on_exception (trainer/call.py): on_train_end, on_fit_end
    // and teardown do not run. lthost saves after the step it finished, then the same.
    let _rng = crate::common::global_rng();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut module, mut data, log) = recorder().expect("hook-recorder");
    let cfg =
        TrainerConfig { max_epochs: Some(2), default_root_dir: dir.path().to_path_buf(), ..TrainerConfig::default() };
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut trainer = Trainer::new(quiet(cfg), None).with_callback(Box::new(SignalAt(flag.clone(), log.clone())));
    trainer.signal = Some(flag);
    let r = trainer.fit(&mut module, &mut data as &mut dyn DataModule, &json!({})).expect("fit");
    assert_eq!(r.interrupted, Some(libc::SIGTERM));
    let calls = log.borrow().clone();
    let after = &calls[calls.iter().rposition(|c| c == "on_train_batch_end").expect("a batch end") + 1..];
    assert_eq!(after, ["Callback.on_exception".to_string()], "hooks after the signal: {after:?}");
    // Without checkpointing the run is saved beside the logs.
    assert!(dir.path().join("interrupted.ckpt").exists(), "the run saved at the signal");
}

/// Records the status each logger of a run is finalized with.
struct StatusLogger(std::path::PathBuf, Rc<RefCell<Vec<String>>>);

impl lthost::loggers::Logger for StatusLogger {
    fn name(&self) -> &str {
        "status"
    }
    fn version(&self) -> lthost::loggers::Version {
        lthost::loggers::Version::Number(0)
    }
    fn log_dir(&self) -> &std::path::Path {
        &self.0
    }
    fn log_hyperparams(&mut self, _: &Value) -> anyhow::Result<()> {
        Ok(())
    }
    fn log_metrics(&mut self, _: &BTreeMap<String, f64>, _: u64) -> anyhow::Result<()> {
        Ok(())
    }
    fn save(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn finalize(&mut self, status: &str) -> anyhow::Result<()> {
        self.1.borrow_mut().push(status.to_string());
        Ok(())
    }
}

#[test]
fn a_signal_finalizes_the_loggers_as_failed() {
    // Lightning's `_interrupt` (trainer/call.py) finalizes every logger with "failed" for
    // SIGTERMException and KeyboardInterrupt alike; a run that ends normally with "success".
    let _rng = crate::common::global_rng();
    for (signal_at, want) in [(true, "failed"), (false, "success")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut module, mut data, log) = recorder().expect("hook-recorder");
        let cfg = TrainerConfig {
            max_epochs: Some(1),
            default_root_dir: dir.path().to_path_buf(),
            logger: true,
            ..quiet(TrainerConfig::default())
        };
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut trainer = Trainer::new(cfg, None);
        if signal_at {
            trainer = trainer.with_callback(Box::new(SignalAt(flag.clone(), log.clone())));
        }
        trainer.signal = Some(flag);
        let statuses = Rc::new(RefCell::new(Vec::new()));
        let seen = statuses.clone();
        trainer.logger_plugins.push(Box::new(move |d: &std::path::Path, _: &lthost::loggers::Version| {
            Ok(Box::new(StatusLogger(d.to_path_buf(), seen.clone())) as Box<dyn lthost::loggers::Logger>)
        }));
        let r = trainer.fit(&mut module, &mut data as &mut dyn DataModule, &json!({})).expect("fit");
        assert_eq!(r.interrupted.is_some(), signal_at);
        assert_eq!(*statuses.borrow(), [want.to_string()], "signal: {signal_at}");
    }
}
