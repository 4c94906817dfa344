//! What callbacks and loggers get beside Lightning's: callback_metrics and logged_metrics at
//! the epoch-end hooks, the CSV logger's rows.
use super::*;

/// What callback_metrics and logged_metrics hold at each epoch-end hook and at the end:
/// (hook, epoch, callback_metrics, logged_metrics).
pub(super) type Metrics = std::collections::BTreeMap<String, f64>;
pub(super) type Seen = Rc<RefCell<Vec<(String, u64, Metrics, Metrics)>>>;

/// Records into `seen` what the reference's `MetricsAt` keeps: callback_metrics and
/// logged_metrics at every epoch-end hook (the sanity check's included), at
/// on_validation_end, on_sanity_check_end, the first on_train_batch_start and on_train_end.
pub(super) fn recorder(seen: Seen) -> impl Callback {
    Probe(move |hook, info: &HookInfo<'_>| {
        let first_batch = hook == Hook::OnTrainBatchStart && (info.current_epoch, info.batch_idx) == (0, Some(0));
        let end = matches!(
            hook,
            Hook::OnTrainEpochEnd | Hook::OnValidationEpochEnd | Hook::OnValidationEnd | Hook::OnTrainEnd
        );
        if end || first_batch || hook == Hook::OnSanityCheckEnd {
            let (callback, logged) = (info.callback_metrics.clone(), info.logged_metrics.clone());
            seen.borrow_mut().push((hook.name().to_string(), info.current_epoch, callback, logged));
        }
        Ok(CallbackAction::default())
    })
}

#[test]
fn callbacks_read_this_epochs_values_at_its_end_hooks() {
    // tests/reference/native_reference.py `metrics_at()`: trainer.callback_metrics and
    // logged_metrics at every on_train_epoch_end and on_validation_epoch_end (the sanity
    // check's included), at on_sanity_check_end, at the first on_train_batch_start (the sanity
    // run's values gone: Lightning's test_sanity_metrics_are_reset) and at on_train_end. The
    // `plan_*` cases are Lightning's logging tests as log plans (docs/lightning-tests/
    // logging.md rows 11, 12, 16, 18, 25, 29-32): every name and value where they are read;
    // `callback_logs_defaults` a callback logging in four hooks (row 19).
    let want = reference();
    for (name, case) in want["metrics_at"].as_object().expect("metrics_at") {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = twin_trainer(dir.path(), case);
        let seen = Seen::default();
        t.callbacks.push(Box::new(recorder(Rc::clone(&seen))));
        // A callback's `self.log` with the default options, in the hooks the case names.
        let logs: Vec<(String, String, f64)> = case["callback_logs"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(hook, mv)| {
                (hook.clone(), mv[0].as_str().expect("a metric").into(), mv[1].as_f64().expect("a value"))
            })
            .collect();
        t.callbacks.push(Box::new(Probe(move |hook: Hook, _: &HookInfo<'_>| {
            let logs = logs.iter().filter(|(h, _, _)| h == hook.name()).map(|(_, m, v)| (m.clone(), *v)).collect();
            Ok(CallbackAction { logs, ..CallbackAction::default() })
        })));
        t.fit(&mut twin_module(&case["module"]), &mut Points::default(), &serde_json::json!({})).expect("fit");
        let want = case["seen"].as_array().expect("seen");
        let got = seen.borrow();
        assert_eq!(got.len(), want.len(), "{name}: epoch-end hooks");
        for (i, ((hook, epoch, callback, logged), w)) in got.iter().zip(want).enumerate() {
            assert_eq!((hook.as_str(), *epoch), (w["hook"].as_str().expect("hook"), w["epoch"].as_u64().expect("e")));
            for (which, metrics) in [("metrics", callback), ("logged", logged)] {
                let w = w[which].as_object().expect("metrics");
                let keys: Vec<&String> = metrics.keys().collect();
                assert_eq!(keys, w.keys().collect::<Vec<_>>(), "{name}: #{i} {hook} at epoch {epoch}: {which}");
                for (k, v) in w {
                    let v = v.as_f64().expect("f64");
                    assert!(exact(metrics[k], v), "{name}: #{i} {hook}: {which} {k} = {} (Lightning {v})", metrics[k]);
                }
            }
        }
    }
}

/// A metrics.csv as rows of its non-empty cells.
pub(super) fn csv_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, f64>> {
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
        let mut m = twin_module(&case["module"]);
        let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("fit");
        same_rows(name, &csv_rows(&report.log_dir.expect("a log dir").join("metrics.csv")), &case["rows"]);
    }
}

/// `got`'s rows are Lightning's (`want`, a reference case's rows): the same cells, to the bit.
pub(super) fn same_rows(name: &str, got: &[std::collections::BTreeMap<String, f64>], want: &serde_json::Value) {
    let want = want.as_array().expect("rows");
    assert_eq!(got.len(), want.len(), "{name}: rows {got:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let w = w.as_object().expect("row");
        assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "{name}: row {i}");
        for (k, v) in w {
            let v = v.as_f64().expect("f64");
            assert!(exact(g[k], v), "{name}: row {i} {k} = {} (Lightning {v})", g[k]);
        }
    }
}
#[test]
fn a_failed_run_calls_on_exception_and_writes_the_rows_it_holds() {
    // tests/reference/native_reference.py `failures()`: Lightning's `_interrupt` calls the
    // callbacks' on_exception wherever the run fails (here in validate, in the sanity check and
    // in a fit's validation) and finalizes the loggers with "failed": the CSV logger writes the
    // rows logged before the failure.
    let want = reference();
    for (name, case) in want["failures"].as_object().expect("failures") {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = lightning_config(dir.path(), case["trainer"].as_object().expect("args"));
        cfg.logger = true;
        let mut t = Trainer::new(cfg, None);
        // OnExceptionCheckpoint: Lightning saves wherever on_exception runs; ModelCheckpoint
        // with save_on_exception beside it, which saves nothing for a failure in the sanity
        // check (Lightning's test_model_checkpoint_on_exception_run_condition_on_validation_start).
        t.cfg.enable_checkpointing = true;
        t.checkpoint.on_exception = true;
        t.checkpoint.save_on_exception = true;
        t.checkpoint.dirpath = Some(dir.path().join("saves"));
        let seen = Rc::new(RefCell::new(0u64));
        let counter = Rc::clone(&seen);
        t.callbacks.push(Box::new(Probe(move |hook, _: &HookInfo<'_>| {
            if hook == Hook::OnException {
                *counter.borrow_mut() += 1;
            }
            Ok(CallbackAction::default())
        })));
        let mut m = Regression::new();
        m.val_on_step = true;
        let at: Vec<u64> = case["fail_at"].as_array().expect("fail_at").iter().filter_map(|v| v.as_u64()).collect();
        m.fail_validation_at = Some((at[0], at[1]));
        let hparams = serde_json::json!({});
        let failed = match case["fn"].as_str() {
            Some("fit") => t.fit(&mut m, &mut Points::default(), &hparams).err(),
            _ => t.evaluate(&mut m, &mut Points::default(), &hparams, crate::context::Stage::Validate).err(),
        };
        assert!(failed.is_some_and(|e| format!("{e:#}").contains("fails at")), "{name}: the run did not fail");
        assert_eq!(Some(*seen.borrow()), case["on_exception"].as_u64(), "{name}: on_exception calls");
        // What OnExceptionCheckpoint saved, in validate too: Lightning's file, its step and
        // epoch, optimizers, and the validation loop's progress at the failure.
        let saves = dir.path().join("saves");
        let mut files: Vec<String> = std::fs::read_dir(&saves)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        files.sort();
        let want_files: Vec<&String> = case["saved"].as_object().expect("saved").keys().collect();
        assert_eq!(files.iter().collect::<Vec<_>>(), want_files, "{name}: OnExceptionCheckpoint's files");
        for (file, want) in case["saved"].as_object().expect("saved") {
            let c = crate::checkpoint::load(&saves.join(file)).expect("a whole checkpoint");
            assert!(c.tensors.contains_key("state_dict.linear.weight"), "{name}: {file} holds the weights");
            // The epoch the save was made in (lthost's `current_epoch` is where a resume starts:
            // the next epoch after a save at an epoch's end).
            let pos = crate::loops::checkpointing::LoopPosition::from_meta(&c.meta).expect("the loops' state");
            let epoch = c.meta.current_epoch - u64::from(pos.restart().at_epoch_end);
            assert_eq!(epoch, want["epoch"], "{name}: {file} epoch");
            assert_eq!(c.meta.global_step, want["global_step"], "{name}: {file} global_step");
            assert_eq!(c.meta.optimizers.len() as u64, want["optimizers"], "{name}: {file} optimizers");
            let progress = if case["fn"] == "fit" {
                &c.meta.loops["fit_loop"]["epoch_loop.val_loop.batch_progress"]
            } else {
                &c.meta.loops["validate_loop"]["batch_progress"]
            };
            assert_eq!(progress["total"], want["val_batch_progress"], "{name}: {file} validation progress");
        }
        let csv = dir.path().join("lightning_logs/version_0/metrics.csv");
        let got = if csv.exists() { csv_rows(&csv) } else { Vec::new() };
        same_rows(name, &got, &case["rows"]);
    }
}

#[test]
fn a_test_after_the_fit_logs_into_its_run_as_lightnings() {
    // tests/reference/native_reference.py `fit_then_test()`: `trainer.test(...)` after
    // `trainer.fit(...)` on the same Trainer: the test row in the fit's metrics.csv at its last
    // step and epoch, and the test's results, with the weights as trained or the best
    // checkpoint's (ModelCheckpoint on val_loss, mode max: an earlier epoch's).
    let want = reference();
    for (name, case) in want["fit_then_test"].as_object().expect("fit_then_test") {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = lightning_config(dir.path(), case["trainer"].as_object().expect("args"));
        cfg.logger = true;
        let best = case["ckpt"].as_str() == Some("best");
        cfg.enable_checkpointing = best;
        let mut t = Trainer::new(cfg, None);
        t.checkpoint.monitor = Some("val_loss".into());
        t.checkpoint.mode = "max".into();
        t.checkpoint.dirpath = Some(dir.path().join("ck"));
        t.then_test = Some(if best { crate::trainer::TestWeights::Best } else { crate::trainer::TestWeights::Current });
        let report = t.fit(&mut Regression::new(), &mut Points::default(), &serde_json::json!({})).expect("fit");
        if best {
            let file = report.best_model_path.as_ref().and_then(|p| p.file_name()).map(|f| f.to_string_lossy());
            assert_eq!(file.as_deref(), case["best"].as_str(), "{name}: the best checkpoint");
        }
        same_rows(name, &csv_rows(&report.log_dir.expect("a log dir").join("metrics.csv")), &case["rows"]);
        let test = report.test.expect("the test after the fit");
        let got = serde_json::to_value(&test.per_dataloader).expect("results");
        let want_results = case["test"].as_array().expect("test results");
        assert_eq!(test.per_dataloader.len(), want_results.len(), "{name}: {got}");
        for (g, w) in test.per_dataloader.iter().zip(want_results) {
            for (k, v) in w.as_object().expect("a result") {
                assert!(exact(g[k], v.as_f64().expect("f64")), "{name}: {k} = {} (Lightning {v})", g[k]);
            }
            assert_eq!(g.len(), w.as_object().map_or(0, |m| m.len()), "{name}: {got}");
        }
    }
}

#[test]
fn every_stage_keeps_its_loggers_as_lightnings() {
    // tests/reference/native_reference.py `stage_logs()` (Lightning's
    // test_logger_after_fit_predict_test_calls, docs/lightning-tests/logging.md row 51): a
    // callback writes `{<stage>: 1.0}` to the logger at each stage's end hook; fit, validate,
    // test and predict each on a Trainer of its own with a CSV logger. The files in the version
    // directory and, for validate, test and predict, metrics.csv's rows are Lightning's. (Fit's
    // rows are not compared: Lightning's CSV logger numbers a row written without a step by the
    // rows it holds unsaved, lthost by the batches that stepped.)
    let want = reference();
    for (stage, want) in want["stage_logs"].as_object().expect("stage_logs") {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = quiet(dir.path(), 1);
        cfg.logger = true;
        let mut t = Trainer::new(cfg, None);
        t.callbacks.push(Box::new(Probe(|hook: Hook, _: &HookInfo<'_>| {
            let name = match hook {
                Hook::OnFitEnd => "fit",
                Hook::OnValidationEnd => "validate",
                Hook::OnTestEnd => "test",
                Hook::OnPredictEnd => "predict",
                _ => return Ok(CallbackAction::default()),
            };
            Ok(CallbackAction { metrics: vec![(name.into(), 1.0)], ..CallbackAction::default() })
        })));
        let (m, data, hparams) = (&mut Regression::new(), &mut Points::default(), &serde_json::json!({}));
        match stage.as_str() {
            "fit" => t.fit(m, data, hparams).map(drop),
            "validate" => t.evaluate(m, data, hparams, crate::context::Stage::Validate).map(drop),
            "test" => t.evaluate(m, data, hparams, crate::context::Stage::Test).map(drop),
            _ => t.predict(m, data, hparams).map(drop),
        }
        .unwrap_or_else(|e| panic!("{stage}: {e:#}"));
        let version = dir.path().join("lightning_logs/version_0");
        let mut files: Vec<String> = std::fs::read_dir(&version)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        files.sort();
        assert_eq!(serde_json::json!(files), want["files"], "{stage}: the version directory");
        if stage != "fit" {
            same_rows(stage, &csv_rows(&version.join("metrics.csv")), &want["rows"]);
        }
    }
}

/// A logger that records the names of its methods as they are called.
struct CallLogger {
    dir: std::path::PathBuf,
    calls: Rc<RefCell<Vec<&'static str>>>,
}

impl crate::loggers::Logger for CallLogger {
    fn name(&self) -> &str {
        "calls"
    }
    fn version(&self) -> crate::loggers::Version {
        crate::loggers::Version::Number(0)
    }
    fn log_dir(&self) -> &Path {
        &self.dir
    }
    fn log_hyperparams(&mut self, _: &serde_json::Value) -> anyhow::Result<()> {
        self.calls.borrow_mut().push("log_hyperparams");
        Ok(())
    }
    fn log_metrics(&mut self, _: &std::collections::BTreeMap<String, f64>, _: u64) -> anyhow::Result<()> {
        self.calls.borrow_mut().push("log_metrics");
        Ok(())
    }
    fn save(&mut self) -> anyhow::Result<()> {
        self.calls.borrow_mut().push("save");
        Ok(())
    }
    fn finalize(&mut self, status: &str) -> anyhow::Result<()> {
        self.calls.borrow_mut().push(if status == "success" { "finalize(success)" } else { "finalize(other)" });
        Ok(())
    }
}

#[test]
fn every_logger_of_a_run_gets_the_metrics_and_the_end() {
    // Lightning's test_multiple_loggers (docs/lightning-tests/loggers.md row 31): two loggers
    // both get every row and `finalize("success")`; no `log_hyperparams`, the module saving
    // none (BoringModel there, the native twin here).
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = quiet(dir.path(), 1);
    cfg.logger = true;
    cfg.loggers = Vec::new();
    cfg.log_every_n_steps = 1;
    let mut t = Trainer::new(cfg, None);
    let logs: Vec<Rc<RefCell<Vec<&'static str>>>> = vec![Rc::default(), Rc::default()];
    for calls in &logs {
        let calls = Rc::clone(calls);
        t.logger_plugins.push(Box::new(move |d: &Path, _: &crate::loggers::Version| {
            Ok(Box::new(CallLogger { dir: d.to_path_buf(), calls: Rc::clone(&calls) })
                as Box<dyn crate::loggers::Logger>)
        }));
    }
    t.fit(&mut Regression::new(), &mut Points::default(), &serde_json::json!({})).expect("fit");
    let (a, b) = (logs[0].borrow(), logs[1].borrow());
    assert_eq!(*a, *b, "both loggers are told the same");
    assert!(!a.contains(&"log_hyperparams"), "{a:?}");
    // 4 training rows, the validation row and the epoch row.
    assert_eq!(a.iter().filter(|c| **c == "log_metrics").count(), 6, "{a:?}");
    assert_eq!(a.last(), Some(&"finalize(success)"), "{a:?}");
}

#[test]
fn the_logger_is_first_called_after_setup_as_lightnings() {
    // Lightning's test_first_logger_call_in_subprocess (docs/lightning-tests/logging.md row
    // 50): at the callbacks' `setup` the logger has had no call and its directory holds
    // nothing (lthost has made the version directory by then, as Lightning's
    // `_call_setup_hook` makes each real logger's experiment; the test's Mock makes none); by
    // on_train_start the logger has been saved (Lightning's `_log_hyperparams`: `log_graph`,
    // which lthost has not, then `save`; no hyper-parameters to hand over here).
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = quiet(dir.path(), 1);
    cfg.logger = true;
    cfg.loggers = Vec::new();
    let mut t = Trainer::new(cfg, None);
    let calls: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let logged = Rc::clone(&calls);
    t.logger_plugins.push(Box::new(move |d: &Path, _: &crate::loggers::Version| {
        Ok(Box::new(CallLogger { dir: d.to_path_buf(), calls: Rc::clone(&logged) }) as Box<dyn crate::loggers::Logger>)
    }));
    let seen: Rc<RefCell<Vec<(Hook, Vec<&'static str>, usize)>>> = Rc::default();
    let version_dir = dir.path().join("lightning_logs/version_0");
    let (record, calls_then, root) = (Rc::clone(&seen), Rc::clone(&calls), version_dir);
    t.callbacks.push(Box::new(Probe(move |hook: Hook, _: &HookInfo<'_>| {
        if matches!(hook, Hook::Setup | Hook::OnTrainStart) {
            let files = std::fs::read_dir(&root).map(|d| d.count()).unwrap_or(usize::MAX);
            record.borrow_mut().push((hook, calls_then.borrow().clone(), files));
        }
        Ok(CallbackAction::default())
    })));
    t.fit(&mut Regression::new(), &mut Points::default(), &serde_json::json!({})).expect("fit");
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].0, seen[0].1.as_slice(), seen[0].2), (Hook::Setup, &[][..], 0), "nothing before setup");
    assert_eq!((seen[1].0, seen[1].1.as_slice()), (Hook::OnTrainStart, &["save"][..]), "by on_train_start");
}

#[test]
fn a_callback_that_cannot_take_on_exception_does_not_keep_it_from_the_others() {
    // A failed run calls every callback's on_exception: one failing there (a callback plugin
    // that trapped is gone) is reported, and the callbacks after it still get the hook.
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = Trainer::new(quiet(dir.path(), 1), None);
    t.callbacks.push(Box::new(Probe(|hook, _: &HookInfo<'_>| {
        if hook == Hook::OnException {
            anyhow::bail!("this callback is gone");
        }
        Ok(CallbackAction::default())
    })));
    let told = Rc::new(RefCell::new(0u32));
    let counter = Rc::clone(&told);
    t.callbacks.push(Box::new(Probe(move |hook, _: &HookInfo<'_>| {
        if hook == Hook::OnException {
            *counter.borrow_mut() += 1;
        }
        Ok(CallbackAction::default())
    })));
    let mut m = Regression::new();
    m.fail_validation_at = Some((0, 0));
    let err = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect_err("the run fails");
    assert!(format!("{err:#}").contains("fails at"), "the run's own error is reported: {err:#}");
    assert_eq!(*told.borrow(), 1, "the second callback got on_exception");
}
