//! The fit loop's tests on the native module (`crate::testing`), beside its Lightning twin.
use std::path::Path;

use crate::callbacks::early_stopping::EarlyStoppingConfig;
use crate::callbacks::model_checkpoint::{CheckpointConfig, SaveLast};
use crate::config::{Limit, TrainerConfig, ValCheckInterval};
use crate::testing::{serial, Points, Regression};
use crate::trainer::{FitReport, Trainer};

fn quiet(dir: &Path, max_epochs: i64) -> TrainerConfig {
    TrainerConfig {
        max_epochs: Some(max_epochs),
        logger: false,
        enable_checkpointing: false,
        enable_progress_bar: false,
        enable_model_summary: false,
        seed: Some(0),
        accelerator: "cpu".into(),
        threads: Some(1),
        default_root_dir: dir.to_path_buf(),
        ..TrainerConfig::default()
    }
}

fn fit(
    cfg: TrainerConfig,
    module: &mut Regression,
    checkpoint: Option<CheckpointConfig>,
    ckpt_path: Option<&Path>,
) -> FitReport {
    try_fit(cfg, module, checkpoint, ckpt_path).unwrap_or_else(|e| panic!("fit: {e:#}"))
}

fn try_fit(
    cfg: TrainerConfig,
    module: &mut Regression,
    checkpoint: Option<CheckpointConfig>,
    ckpt_path: Option<&Path>,
) -> anyhow::Result<FitReport> {
    let mut t = Trainer::new(cfg, None);
    if let Some(c) = checkpoint {
        t.cfg.enable_checkpointing = true;
        t.checkpoint = c;
    }
    t.ckpt_path = ckpt_path.map(|p| p.display().to_string());
    t.fit(module, &mut Points::default(), &serde_json::json!({}))
}

fn count(m: &Regression, hook: &str) -> usize {
    m.calls.borrow().iter().filter(|c| *c == hook).count()
}

#[test]
fn a_run_resumed_from_any_step_ends_with_the_uninterrupted_runs_weights() {
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let saves = dir.path().join("saves");
    // Three epochs of four shuffled batches, validating after every second batch (so some
    // saves are made with a validation due), a checkpoint after every step.
    let cfg = |root: &Path| TrainerConfig {
        val_check_interval: Some(ValCheckInterval::Every(Limit::Fraction(0.5))),
        ..quiet(root, 3)
    };
    let every_step = |dir: &Path| CheckpointConfig {
        dirpath: Some(dir.to_path_buf()),
        every_n_train_steps: Some(1),
        save_top_k: -1,
        save_last: SaveLast::Yes,
        ..CheckpointConfig::default()
    };
    let mut straight = Regression::new();
    let report = fit(cfg(dir.path()), &mut straight, Some(every_step(&saves)), None);
    assert_eq!(report.global_step, 12);
    let want = straight.weights();
    let last = |dir: &Path| {
        let meta = crate::checkpoint::load(&dir.join("last.ckpt")).expect("last.ckpt").meta;
        crate::loops::checkpointing::LoopPosition::from_meta(&meta).expect("position")
    };
    let want_loops = last(&saves);
    let mut files: Vec<_> = std::fs::read_dir(&saves).expect("saves").flatten().map(|e| e.path()).collect();
    files.retain(|f| !f.ends_with("last.ckpt"));
    files.sort();
    assert_eq!(files.len(), 12, "one checkpoint per step: {files:?}");
    for file in &files {
        let root = tempfile::tempdir().expect("tempdir");
        let mut resumed = Regression::new();
        let r = fit(cfg(root.path()), &mut resumed, Some(every_step(&root.path().join("ck"))), Some(file));
        assert_eq!(r.global_step, 12, "resumed from {}", file.display());
        for (got, want) in resumed.weights().iter().zip(&want) {
            assert!(got.equal(want), "resumed from {}: {got:?} != {want:?}", file.display());
        }
        // The steps left, each once: no batch repeated or skipped.
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let step: usize = name.split("step=").nth(1).and_then(|s| s.split(['.', '-']).next()?.parse().ok()).unwrap();
        assert_eq!(count(&resumed, "training_step"), 12 - step, "resumed from {name}");
        // The loops' state at the last step's save is the uninterrupted run's (epochs counted
        // once). A run resumed from that very save trains nothing and saves at its end.
        if step == 12 {
            continue;
        }
        let got = last(&root.path().join("ck"));
        assert_eq!(got.loops.fit_loop.epoch_progress, want_loops.loops.fit_loop.epoch_progress, "{name}");
        let (g, w) = (&got.loops.fit_loop.epoch_loop, &want_loops.loops.fit_loop.epoch_loop);
        assert_eq!(g.batch_progress.total, w.batch_progress.total, "{name}");
        assert_eq!(g.batches_that_stepped, w.batches_that_stepped, "{name}");
        assert_eq!(got.optimization, want_loops.optimization, "{name}");
    }
}

fn reference() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/native.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make reference`)", path.display()));
    serde_json::from_str(&text).expect("native.json")
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-6 * want.abs().max(1.0)
}

#[test]
fn the_native_module_trains_as_its_lightning_twin() {
    // tests/reference/native_reference.py: the same model and data as a LightningModule,
    // trained by Lightning 2.6.6 with the same Trainer and EarlyStopping arguments.
    let want = reference();
    let cases = want["cases"].as_object().expect("cases");
    assert!(cases.len() >= 22);
    for (name, case) in cases {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = case["trainer"].as_object().cloned().expect("trainer args");
        for (k, v) in serde_json::to_value(TrainerConfig { max_epochs: None, ..quiet(dir.path(), 1) })
            .expect("config")
            .as_object()
            .expect("config")
        {
            args.entry(k.clone()).or_insert(v.clone());
        }
        let cfg: TrainerConfig = serde_json::from_value(args.into()).expect("Lightning's Trainer arguments");
        let mut t = Trainer::new(cfg, None);
        if !case["early_stopping"].is_null() {
            t.early_stopping = Some(serde_json::from_value(case["early_stopping"].clone()).expect("EarlyStopping"));
        }
        let mut m = Regression::new();
        m.none_even = case["module"]["none_even"].as_bool().unwrap_or(false);
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("fit");
        assert_eq!(report.global_step, case["global_step"], "{name}: global_step ({})", report.stop_reason);
        assert_eq!(report.epochs, case["current_epoch"], "{name}: epochs run");
        assert_eq!(report.stopped_epoch, case["stopped_epoch"].as_u64(), "{name}: EarlyStopping's stopped_epoch");
        // Why EarlyStopping stopped (its last check's reason, even one that min_epochs held off).
        assert_eq!(report.stopping_reason, case["stopping_reason"].as_str(), "{name}: EarlyStopping's stopping_reason");
        let losses: Vec<f64> = serde_json::from_value(case["train_losses"].clone()).expect("losses");
        assert_eq!(m.losses.len(), losses.len(), "{name}: training steps");
        for (i, (got, want)) in m.losses.iter().zip(&losses).enumerate() {
            assert!(close(*got, *want), "{name}: step {i} loss {got} (Lightning {want})");
        }
        let weights: Vec<f64> =
            m.weights().iter().flat_map(|t| Vec::<f64>::try_from(t.flatten(0, -1)).expect("f64")).collect();
        let want_w: Vec<f64> = serde_json::from_value(case["weights"].clone()).expect("weights");
        assert!(
            weights.iter().zip(&want_w).all(|(g, w)| close(*g, *w)),
            "{name}: weights {weights:?} (Lightning {want_w:?})"
        );
        for (k, v) in case["callback_metrics"].as_object().expect("metrics") {
            let got = report.metrics.get(k).copied();
            let v = v.as_f64().expect("f64");
            assert!(got.is_some_and(|g| close(g, v)), "{name}: {k} = {got:?} (Lightning {v})");
        }
    }
}

#[test]
fn early_stopping_state_rides_in_checkpoints_and_resumes_as_in_lightning() {
    // Lightning's test_resume_early_stopping_from_checkpoint, on the native twin.
    let want = reference()["checkpoints"].clone();
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let saves = dir.path().join("saves");
    let es: EarlyStoppingConfig = serde_json::from_value(want["early_stopping"].clone()).expect("EarlyStopping");
    let every_epoch = CheckpointConfig {
        dirpath: Some(saves.clone()),
        save_top_k: -1,
        filename: Some("{epoch}".into()),
        ..CheckpointConfig::default()
    };
    let mut t = Trainer::new(TrainerConfig { enable_checkpointing: true, ..quiet(dir.path(), 4) }, None);
    t.checkpoint = every_epoch;
    t.early_stopping = Some(es.clone());
    t.fit(&mut Regression::new(), &mut Points::default(), &serde_json::json!({})).expect("fit");
    let key = want["state_key"].as_str().expect("key");
    let states = want["states"].as_object().expect("states");
    assert_eq!(states.len(), 4);
    for (file, state) in states {
        let meta = crate::checkpoint::load(&saves.join(file)).unwrap_or_else(|e| panic!("{file}: {e:#}")).meta;
        let got = meta.callbacks.get(key).unwrap_or_else(|| panic!("{file}: no state under {key}"));
        for k in ["wait_count", "stopped_epoch", "patience", "stopping_reason", "stopping_reason_message"] {
            assert_eq!(got[k], state[k], "{file}: EarlyStopping's {k}");
        }
        let (g, w) = (got["best_score"].as_f64().expect("best"), state["best_score"].as_f64().expect("best"));
        assert!(close(g, w), "{file}: best_score {g} (Lightning {w})");
    }
    // Resuming with max_epochs=1: from the end of epoch 2 refused, from epoch 1's nothing trains.
    for (file, r) in want["resume_with_max_epochs_1"].as_object().expect("resumes") {
        let root = tempfile::tempdir().expect("tempdir");
        let mut t = Trainer::new(quiet(root.path(), 1), None);
        t.ckpt_path = Some(saves.join(file).display().to_string());
        match (t.fit(&mut Regression::new(), &mut Points::default(), &serde_json::json!({})), r["error"].as_str()) {
            (Ok(report), None) => assert_eq!(report.global_step, r["global_step"], "{file}"),
            (Err(e), Some(msg)) => assert_eq!(e.to_string(), msg, "{file}"),
            (got, want) => panic!("{file}: {:?}, Lightning: {want:?}", got.map(|r| r.global_step)),
        }
    }
    // A resumed EarlyStopping takes the patience it saved.
    let r = &want["resume_with_patience_1"];
    let root = tempfile::tempdir().expect("tempdir");
    let mut t = Trainer::new(quiet(root.path(), 20), None);
    t.ckpt_path = Some(saves.join("epoch=1.ckpt").display().to_string());
    t.early_stopping = Some(EarlyStoppingConfig { patience: 1, ..es });
    let report = t.fit(&mut Regression::new(), &mut Points::default(), &serde_json::json!({})).expect("resume");
    assert_eq!(report.global_step, r["global_step"]);
    assert_eq!(report.epochs + 2, r["current_epoch"], "two epochs were done before the resume");
    assert_eq!(report.stopped_epoch, r["stopped_epoch"].as_u64());
}

#[test]
fn a_failure_between_epochs_saves_a_position_at_the_next_epochs_start() {
    // The DataModule fails when asked again for epoch 2's loader: the on_exception checkpoint
    // resumes epoch 2 from its first batch (not past as many batches as epoch 1 had).
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg =
        TrainerConfig { reload_dataloaders_every_n_epochs: 1, enable_checkpointing: true, ..quiet(dir.path(), 4) };
    let mut t = Trainer::new(cfg, None);
    t.checkpoint =
        CheckpointConfig { dirpath: Some(dir.path().join("ck")), on_exception: true, ..CheckpointConfig::default() };
    let mut data = Points::default();
    data.fail_at_train_ask = Some(3);
    let err = t.fit(&mut Regression::new(), &mut data, &serde_json::json!({})).expect_err("the reload fails");
    assert!(format!("{err:#}").contains("3th time"), "{err:#}");
    let meta = crate::checkpoint::load(&dir.path().join("ck/on_exception.ckpt")).expect("on_exception.ckpt").meta;
    let pos = crate::loops::checkpointing::LoopPosition::from_meta(&meta).expect("position");
    assert_eq!((pos.current_epoch, pos.global_step), (2, 8));
    assert_eq!(pos.restart().batches_done, 0);
}

#[test]
fn minus_one_from_on_train_batch_start_ends_each_epoch_there() {
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = Regression::new();
    m.end_epoch_at = Some(2);
    let report = fit(TrainerConfig { num_sanity_val_steps: 0, ..quiet(dir.path(), 3) }, &mut m, None, None);
    // Batches 0 and 1 train, batch 2's start ends the epoch; the next epoch still runs.
    assert_eq!(count(&m, "training_step"), 6);
    assert_eq!(count(&m, "on_train_batch_start"), 9);
    assert_eq!(count(&m, "on_train_epoch_end"), 3);
    assert_eq!(report.global_step, 6);
    // An epoch ended so skips its end-of-epoch validation (Lightning 2.6.6, checked with
    // BoringModel and the same limits: 6 training steps, 9 batch starts, 0 validation steps).
    assert_eq!(count(&m, "validation_step"), 0);
}

#[test]
fn max_steps_stops_inside_an_epoch() {
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = Regression::new();
    let report = fit(TrainerConfig { max_steps: 6, ..quiet(dir.path(), -1) }, &mut m, None, None);
    assert_eq!(report.global_step, 6);
    assert_eq!(count(&m, "training_step"), 6);
    assert_eq!(count(&m, "on_train_start"), 1);
    assert_eq!(count(&m, "on_train_end"), 1);
}

/// A TrainerConfig of Lightning's Trainer arguments `args` over the quiet defaults.
fn lightning_config(dir: &Path, args: &serde_json::Map<String, serde_json::Value>) -> TrainerConfig {
    let mut all = serde_json::to_value(TrainerConfig { max_epochs: None, ..quiet(dir, 1) }).expect("config");
    let map = all.as_object_mut().expect("config");
    for (k, v) in args {
        map.insert(k.clone(), v.clone());
    }
    serde_json::from_value(all).expect("Lightning's Trainer arguments")
}

#[test]
fn a_resumed_run_calls_the_hooks_lightning_does() {
    // tests/reference/native_reference.py `resumes()`: Lightning's resume cases (loops.md RS-a..d).
    // lthost differs where a checkpoint predates the end of its epoch (taken at the last batch's
    // end with a validation due): lthost runs that validation and finishes the epoch (its
    // on_train_epoch_end and epoch metrics, as the uninterrupted run does); Lightning counts the
    // epoch done without them and also skips the next epoch's on_train_epoch_start.
    // (case, count, lthost minus Lightning):
    let differs: &[(&str, &str, i64)] = &[
        ("rs_b_last_batch_val_due", "on_train_epoch_start", 1),
        ("rs_b_last_batch_val_due", "on_train_epoch_end", 1),
        ("rs_b_last_batch_val_due", "on_validation_start", 1),
        ("rs_b_last_batch_val_due", "validation_step", 2),
        // A validation cut by a failure runs again from its first batch (its epoch mean is
        // the uninterrupted run's); Lightning continues it from the failed batch.
        ("rs_e_failure_in_mid_epoch_validation", "validation_step", 1),
        ("rs_f_failure_in_epoch_end_validation", "validation_step", 1),
        ("rs_g_save_on_exception", "validation_step", 1),
    ];
    let want = reference();
    let cases = want["resumes"].as_object().expect("resumes");
    assert_eq!(cases.len(), 7);
    for (name, case) in cases {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let saves = dir.path().join("saves");
        let mut first = case["first"].as_object().cloned().expect("first fit's arguments");
        first.insert("num_sanity_val_steps".into(), 0.into());
        let mut checkpoint: CheckpointConfig =
            serde_json::from_value(case["checkpoint"].clone()).expect("ModelCheckpoint's arguments");
        checkpoint.dirpath = Some(saves.clone());
        let fails =
            case["fail_val_at"].as_array().map(|a| (a[0].as_u64().expect("epoch"), a[1].as_u64().expect("batch")));
        let mut m = Regression::new();
        m.fail_validation_at = fails;
        let first_fit = try_fit(lightning_config(dir.path(), &first), &mut m, Some(checkpoint), None);
        assert_eq!(first_fit.is_err(), fails.is_some(), "{name}: the first fit fails where asked");
        let mut saved: Vec<String> = std::fs::read_dir(&saves)
            .expect("saves")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        saved.sort();
        assert_eq!(serde_json::to_value(&saved).expect("names"), case["saved"], "{name}: the first fit's files");
        first.insert("max_epochs".into(), case["max_epochs"].clone());
        let root = tempfile::tempdir().expect("tempdir");
        let mut m = Regression::new();
        let file = saves.join(case["file"].as_str().expect("file"));
        let mut t = Trainer::new(lightning_config(root.path(), &first), None);
        t.ckpt_path = Some(file.display().to_string());
        let end = AtTrainEnd::attach(&mut t);
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("resumed fit");
        assert_eq!(report.global_step, case["global_step"], "{name}: global_step");
        // The step logged values get: after a resume from inside a batch's validation, that
        // batch's step counts once.
        let stepped = end.borrow().as_ref().map(|e| e.batches_that_stepped);
        assert_eq!(stepped, case["batches_that_stepped"].as_u64(), "{name}: _batches_that_stepped");
        for (hook, n) in case["counts"].as_object().expect("counts") {
            let delta = differs.iter().find(|d| d.0 == name && d.1 == hook).map_or(0, |d| d.2);
            let want = n.as_i64().expect("count") + delta;
            assert_eq!(count(&m, hook) as i64, want, "{name}: {hook} (Lightning {n}, lthost's difference {delta})");
        }
    }
}

/// What a run leaves at `on_train_end`.
#[derive(Default)]
struct TrainEnd {
    batches_that_stepped: u64,
    /// The first scheduler's state and the first group's learning rate.
    scheduler: Option<(serde_json::Value, f64)>,
}

/// Keeps [`TrainEnd`].
struct AtTrainEnd(std::rc::Rc<std::cell::RefCell<Option<TrainEnd>>>);

impl AtTrainEnd {
    fn attach(t: &mut Trainer) -> std::rc::Rc<std::cell::RefCell<Option<TrainEnd>>> {
        let kept = std::rc::Rc::default();
        t.callbacks.push(Box::new(AtTrainEnd(std::rc::Rc::clone(&kept))));
        kept
    }
}

impl crate::callbacks::Callback for AtTrainEnd {
    fn name(&self) -> &str {
        "AtTrainEnd"
    }
    fn on_hook(
        &mut self,
        hook: crate::hooks::Hook,
        info: &crate::callbacks::HookInfo<'_>,
    ) -> anyhow::Result<crate::callbacks::CallbackAction> {
        if hook == crate::hooks::Hook::OnTrainEnd {
            let scheduler = match info.optim {
                Some(o) if !o.schedulers.is_empty() => Some((o.schedulers[0].scheduler.state(), o.lr(0, 0)?)),
                _ => None,
            };
            *self.0.borrow_mut() = Some(TrainEnd { batches_that_stepped: info.batches_that_stepped, scheduler });
        }
        Ok(crate::callbacks::CallbackAction::default())
    }
}

#[test]
fn an_epoch_cut_short_does_not_step_reduce_lr_on_plateau() {
    // tests/reference/native_reference.py `plateaus()`: Lightning steps an epoch-interval
    // ReduceLROnPlateau only after an epoch that reached its last batch.
    let want = reference();
    let cases = want["plateaus"].as_object().expect("plateaus");
    assert_eq!(cases.len(), 3);
    for (name, case) in cases {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Trainer::new(lightning_config(dir.path(), case["trainer"].as_object().expect("args")), None);
        let state = AtTrainEnd::attach(&mut t);
        let mut m = Regression::new();
        m.plateau_on = Some(if case["monitor"] == "val_loss" { "val_loss" } else { "train_loss_epoch" });
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("fit");
        assert_eq!(report.global_step, case["global_step"], "{name}");
        let (got, lr) = state.borrow_mut().take().and_then(|e| e.scheduler).expect("on_train_end ran");
        let s = &case["scheduler"];
        assert_eq!(got["last_epoch"], s["last_epoch"], "{name}: the plateau's steps");
        assert_eq!(got["num_bad_epochs"], s["num_bad_epochs"], "{name}");
        assert!(close(got["best"].as_f64().expect("best"), s["best"].as_f64().expect("best")), "{name}: best {got}");
        assert!(close(lr, s["lr"].as_f64().expect("lr")), "{name}: lr {lr}, Lightning {}", s["lr"]);
    }
}

/// Asks to stop once, at the end of training batch `.1` of epoch `.0`.
struct StopAt(u64, u64);

impl crate::callbacks::Callback for StopAt {
    fn name(&self) -> &str {
        "StopAt"
    }
    fn on_hook(
        &mut self,
        hook: crate::hooks::Hook,
        info: &crate::callbacks::HookInfo<'_>,
    ) -> anyhow::Result<crate::callbacks::CallbackAction> {
        let here = hook == crate::hooks::Hook::OnTrainBatchEnd
            && info.current_epoch == self.0
            && info.batch_idx == Some(self.1);
        Ok(crate::callbacks::CallbackAction { stop: here.then(|| "asked".into()), ..Default::default() })
    }
}

#[test]
fn a_stop_asked_inside_an_epoch_ends_it_as_in_lightning() {
    // tests/reference/native_reference.py `stops()`: Lightning's test_should_stop_mid_epoch and
    // its min_epochs/min_steps variants.
    let want = reference();
    let cases = want["stops"].as_object().expect("stops");
    assert_eq!(cases.len(), 4);
    for (name, case) in cases {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Trainer::new(lightning_config(dir.path(), case["trainer"].as_object().expect("args")), None);
        let at: Vec<u64> = serde_json::from_value(case["at"].clone()).expect("at");
        t.callbacks.push(Box::new(StopAt(at[0], at[1])));
        let mut m = Regression::new();
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("fit");
        assert_eq!(report.global_step, case["global_step"], "{name}: global_step");
        assert_eq!(report.epochs, case["current_epoch"], "{name}: current_epoch");
        for (hook, n) in case["counts"].as_object().expect("counts") {
            assert_eq!(count(&m, hook) as u64, n.as_u64().expect("count"), "{name}: {hook}");
        }
        let losses: Vec<f64> = serde_json::from_value(case["train_losses"].clone()).expect("losses");
        assert_eq!(m.losses.len(), losses.len(), "{name}: training steps");
        assert!(m.losses.iter().zip(&losses).all(|(g, w)| close(*g, *w)), "{name}: {:?} vs {losses:?}", m.losses);
    }
}

/// What callback_metrics hold at each epoch-end hook: (hook, epoch, metrics).
type Seen = std::rc::Rc<std::cell::RefCell<Vec<(String, u64, std::collections::BTreeMap<String, f64>)>>>;

struct MetricsAt(Seen);

impl crate::callbacks::Callback for MetricsAt {
    fn name(&self) -> &str {
        "MetricsAt"
    }
    fn on_hook(
        &mut self,
        hook: crate::hooks::Hook,
        info: &crate::callbacks::HookInfo<'_>,
    ) -> anyhow::Result<crate::callbacks::CallbackAction> {
        use crate::hooks::Hook;
        if matches!(hook, Hook::OnTrainEpochEnd | Hook::OnValidationEpochEnd) {
            let kept = (hook.name().to_string(), info.current_epoch, info.callback_metrics.clone());
            self.0.borrow_mut().push(kept);
        }
        Ok(crate::callbacks::CallbackAction::default())
    }
}

#[test]
fn callbacks_read_this_epochs_values_at_its_end_hooks() {
    // tests/reference/native_reference.py `metrics_at()`: trainer.callback_metrics at every
    // on_train_epoch_end and on_validation_epoch_end (the sanity check's included).
    let want = reference();
    for (name, case) in want["metrics_at"].as_object().expect("metrics_at") {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Trainer::new(lightning_config(dir.path(), case["trainer"].as_object().expect("args")), None);
        let seen = Seen::default();
        t.callbacks.push(Box::new(MetricsAt(std::rc::Rc::clone(&seen))));
        t.fit(&mut Regression::new(), &mut Points::default(), &serde_json::json!({})).expect("fit");
        let want = case["seen"].as_array().expect("seen");
        let got = seen.borrow();
        assert_eq!(got.len(), want.len(), "{name}: epoch-end hooks");
        for (i, ((hook, epoch, metrics), w)) in got.iter().zip(want).enumerate() {
            assert_eq!((hook.as_str(), *epoch), (w["hook"].as_str().expect("hook"), w["epoch"].as_u64().expect("e")));
            let w = w["metrics"].as_object().expect("metrics");
            let keys: Vec<&String> = metrics.keys().collect();
            assert_eq!(keys, w.keys().collect::<Vec<_>>(), "{name}: #{i} {hook} at epoch {epoch}");
            for (k, v) in w {
                let v = v.as_f64().expect("f64");
                assert!(close(metrics[k], v), "{name}: #{i} {hook}: {k} = {} (Lightning {v})", metrics[k]);
            }
        }
    }
}

/// A metrics.csv as rows of its non-empty cells.
fn csv_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.parse::<f64>().unwrap_or_else(|e| panic!("{k}={v}: {e}"))))
                .collect()
        })
        .collect()
}

#[test]
fn the_csv_loggers_rows_are_lightnings() {
    // tests/reference/native_reference.py `rows()`: Lightning's CSVLogger rows (step, epoch,
    // values), a logged `step` included.
    let want = reference();
    for (name, case) in want["rows"].as_object().expect("rows") {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = lightning_config(dir.path(), case["trainer"].as_object().expect("args"));
        cfg.logger = true;
        let mut t = Trainer::new(cfg, None);
        let mut m = Regression::new();
        m.log_step = case["module"]["log_step"].as_bool().unwrap_or(false);
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("fit");
        let got = csv_rows(&report.log_dir.expect("a log dir").join("metrics.csv"));
        let want = case["rows"].as_array().expect("rows");
        assert_eq!(got.len(), want.len(), "{name}: rows {got:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let w = w.as_object().expect("row");
            assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "{name}: row {i}");
            for (k, v) in w {
                assert!(close(g[k], v.as_f64().expect("f64")), "{name}: row {i} {k} = {} (Lightning {v})", g[k]);
            }
        }
    }
}
