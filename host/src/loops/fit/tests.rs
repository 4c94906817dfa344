//! The fit loop's tests on the native module (`crate::testing`), beside its Lightning twin.
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use crate::callbacks::early_stopping::EarlyStoppingConfig;
use crate::callbacks::model_checkpoint::{CheckpointConfig, SaveLast};
use crate::callbacks::{Callback, CallbackAction, HookInfo};
use crate::config::{Limit, TrainerConfig, ValCheckInterval};
use crate::hooks::Hook;
use crate::testing::{quiet, serial, Points, Regression};
use crate::trainer::{FitReport, Trainer};

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
        // Lightning's test_restart_parity (docs/lightning-tests/loops.md row 8): every file
        // the resumed run writes equals the uninterrupted run's file of that name: position,
        // progress (the epoch's current counts too), optimizer and scheduler state, weights.
        for got_file in std::fs::read_dir(root.path().join("ck")).expect("ck").flatten().map(|e| e.path()) {
            let file = got_file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let (got, want) = (
                crate::checkpoint::load(&got_file).expect("a save"),
                crate::checkpoint::load(&saves.join(&file)).expect("its twin"),
            );
            let at = format!("resumed from {name}: {file}");
            let (gp, wp) = (
                crate::loops::checkpointing::LoopPosition::from_meta(&got.meta).expect("position"),
                crate::loops::checkpointing::LoopPosition::from_meta(&want.meta).expect("position"),
            );
            assert_eq!((gp.current_epoch, gp.global_step), (wp.current_epoch, wp.global_step), "{at}");
            assert_eq!(gp.loops.fit_loop.epoch_progress, wp.loops.fit_loop.epoch_progress, "{at}");
            let (g, w) = (&gp.loops.fit_loop.epoch_loop, &wp.loops.fit_loop.epoch_loop);
            assert_eq!(
                (&g.batch_progress, g.batches_that_stepped),
                (&w.batch_progress, w.batches_that_stepped),
                "{at}"
            );
            assert_eq!(gp.optimization, wp.optimization, "{at}");
            assert_eq!(
                (&got.meta.optimizers, &got.meta.schedulers),
                (&want.meta.optimizers, &want.meta.schedulers),
                "{at}"
            );
            assert_eq!(got.tensors.keys().collect::<Vec<_>>(), want.tensors.keys().collect::<Vec<_>>(), "{at}");
            for (k, t) in &got.tensors {
                assert!(t.equal(&want.tensors[k]), "{at}: {k}");
            }
        }
    }
}

fn reference() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/native.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make reference`)", path.display()));
    serde_json::from_str(&text).expect("native.json")
}

/// Lightning's number to the bit: the same libtorch kernels run the same float32 ops, and
/// logged epoch values are reduced in float32 as Lightning's result collection reduces them.
fn exact(got: f64, want: f64) -> bool {
    got == want || (got.is_nan() && want.is_nan())
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
        let mut m = twin_module(&case["module"]);
        let mut data = Points::with_second_val(case["module"]["second_val"].as_i64());
        let report = t.fit(&mut m, &mut data, &serde_json::json!({})).expect("fit");
        assert_eq!(report.global_step, case["global_step"], "{name}: global_step ({})", report.stop_reason);
        assert_eq!(report.epochs, case["current_epoch"], "{name}: epochs run");
        assert_eq!(report.stopped_epoch, case["stopped_epoch"].as_u64(), "{name}: EarlyStopping's stopped_epoch");
        // Why EarlyStopping stopped (its last check's reason, even one that min_epochs held off).
        assert_eq!(report.stopping_reason, case["stopping_reason"].as_str(), "{name}: EarlyStopping's stopping_reason");
        let losses: Vec<f64> = serde_json::from_value(case["train_losses"].clone()).expect("losses");
        assert_eq!(m.losses.len(), losses.len(), "{name}: training steps");
        for (i, (got, want)) in m.losses.iter().zip(&losses).enumerate() {
            assert!(exact(*got, *want), "{name}: step {i} loss {got} (Lightning {want})");
        }
        let weights: Vec<f64> =
            m.weights().iter().flat_map(|t| Vec::<f64>::try_from(t.flatten(0, -1)).expect("f64")).collect();
        let want_w: Vec<f64> = serde_json::from_value(case["weights"].clone()).expect("weights");
        assert!(
            weights.iter().zip(&want_w).all(|(g, w)| exact(*g, *w)),
            "{name}: weights {weights:?} (Lightning {want_w:?})"
        );
        for (k, v) in case["callback_metrics"].as_object().expect("metrics") {
            let got = report.metrics.get(k).copied();
            let v = v.as_f64().expect("f64");
            assert!(got.is_some_and(|g| exact(g, v)), "{name}: {k} = {got:?} (Lightning {v})");
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
        assert!(exact(g, w), "{file}: best_score {g} (Lightning {w})");
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

/// The native module with a reference case's module attributes (`case["module"]`).
fn twin_module(args: &serde_json::Value) -> Regression {
    let mut m = Regression::new();
    m.none_even = args["none_even"].as_bool().unwrap_or(false);
    m.log_step = args["log_step"].as_bool().unwrap_or(false);
    m.shared_name = args["shared_name"].as_bool().unwrap_or(false);
    m.sparse_log = args["sparse_log"].as_bool().unwrap_or(false);
    m.reduce_probe = match args["reduce_probe"].as_str() {
        Some("min") => Some(crate::context::ReduceFx::Min),
        Some("max") => Some(crate::context::ReduceFx::Max),
        Some("sum") => Some(crate::context::ReduceFx::Sum),
        Some(_) => Some(crate::context::ReduceFx::Mean),
        None => None,
    };
    m.dup_hooks = match args["dup_hooks"].as_str() {
        Some("sum") => Some(crate::context::ReduceFx::Sum),
        Some(_) => Some(crate::context::ReduceFx::Mean),
        None => None,
    };
    m.log_plan = log_plan(args);
    m
}

/// A reference case's module attributes' `log_plan` (none: empty).
fn log_plan(args: &serde_json::Value) -> Vec<crate::testing::Planned> {
    let plan = args["log_plan"].as_array().map(Vec::as_slice).unwrap_or_default();
    plan.iter().map(|e| crate::testing::Planned::from_json(e).expect("a plan entry")).collect()
}

/// A Trainer with a reference case's Lightning Trainer arguments (`case["trainer"]`).
fn twin_trainer(dir: &Path, case: &serde_json::Value) -> Trainer<'static> {
    Trainer::new(lightning_config(dir, case["trainer"].as_object().expect("Trainer arguments")), None)
}

/// What a run leaves at `on_train_end`.
#[derive(Default)]
struct TrainEnd {
    batches_that_stepped: u64,
    /// The first scheduler's state and the first group's learning rate.
    scheduler: Option<(serde_json::Value, f64)>,
}

/// A host callback made of a closure: the tests' probes.
struct Probe<F>(F);

impl<F: FnMut(Hook, &HookInfo<'_>) -> anyhow::Result<CallbackAction>> Callback for Probe<F> {
    fn name(&self) -> &str {
        "Probe"
    }
    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> anyhow::Result<CallbackAction> {
        (self.0)(hook, info)
    }
}

/// What `t`'s run leaves at `on_train_end`, once it ran.
fn at_train_end(t: &mut Trainer) -> Rc<RefCell<Option<TrainEnd>>> {
    let kept: Rc<RefCell<Option<TrainEnd>>> = Rc::default();
    let into = Rc::clone(&kept);
    t.callbacks.push(Box::new(Probe(move |hook, info: &HookInfo<'_>| {
        if hook == Hook::OnTrainEnd {
            let scheduler = match info.optim {
                Some(o) if !o.schedulers.is_empty() => Some((o.schedulers[0].scheduler.state(), o.lr(0, 0)?)),
                _ => None,
            };
            *into.borrow_mut() = Some(TrainEnd { batches_that_stepped: info.batches_that_stepped, scheduler });
        }
        Ok(CallbackAction::default())
    })));
    kept
}

mod dataloaders;
mod devices;
mod epoch_ends;
mod grad_modes;
mod metrics;
mod own_callbacks;
mod resume;
