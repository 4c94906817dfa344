//! Several evaluation DataLoaders beside Lightning's sequential CombinedLoader: the names
//! with `/dataloader_idx_<i>`, what callbacks read, the CSV rows, `validate`/`test` results
//! per DataLoader.
use super::metrics::{csv_rows, Metrics, Seen};
use super::*;
use crate::context::Stage;

/// `got` has exactly `want`'s keys, each value [`exact`]ly Lightning's.
fn same(what: &str, got: &Metrics, want: &serde_json::Value) {
    let want = want.as_object().expect("metrics");
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}");
    for (k, v) in want {
        let v = v.as_f64().expect("f64");
        assert!(exact(got[k], v), "{what}: {k} = {} (Lightning {v})", got[k]);
    }
}

fn module(case: &serde_json::Value) -> Regression {
    let mut m = Regression::new();
    m.val_on_step = case["module"]["val_on_step"].as_bool().unwrap_or(false);
    m.loader_names = case["module"]["loader_names"].as_bool().unwrap_or(false);
    m.epoch_end_value = case["module"]["epoch_end_value"].as_f64().map(|v| v as f32);
    m.log_plan = log_plan(&case["module"]);
    m
}

fn data(case: &serde_json::Value) -> Points {
    Points::with_second_val(case["second_val"].as_i64())
}

#[test]
fn several_evaluation_dataloaders_run_as_lightnings() {
    // tests/reference/native_reference.py `dataloaders()`: a fit with two validation
    // DataLoaders (Lightning's list of `val_dataloader()`s), then `validate` and `test`.
    let want = reference();
    for (name, case) in want["dataloaders"].as_object().expect("dataloaders") {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = lightning_config(dir.path(), case["trainer"].as_object().expect("args"));
        cfg.logger = true;
        let mut t = Trainer::new(cfg, None);
        let seen = Seen::default();
        t.callbacks.push(Box::new(super::metrics::recorder(Rc::clone(&seen))));
        let mut m = module(case);
        let report = t.fit(&mut m, &mut data(case), &serde_json::json!({})).expect("fit");
        let losses: Vec<f64> = serde_json::from_value(case["train_losses"].clone()).expect("losses");
        assert_eq!(m.losses.len(), losses.len(), "{name}: training steps");
        assert!(m.losses.iter().zip(&losses).all(|(g, w)| exact(*g, *w)), "{name}: losses {:?}", m.losses);
        let mut end = report.metrics.clone();
        // FitReport.metrics adds the bar's `loss` (logging.md difference 9).
        end.remove("loss");
        same(&format!("{name}: callback_metrics at the end"), &end, &case["callback_metrics"]);
        let rows = csv_rows(&report.log_dir.expect("a log dir").join("metrics.csv"));
        let want_rows = case["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), want_rows.len(), "{name}: rows {rows:?}");
        for (i, (g, w)) in rows.iter().zip(want_rows).enumerate() {
            same(&format!("{name}: row {i}"), g, w);
        }
        let want_seen = case["seen"].as_array().expect("seen");
        let got = seen.borrow();
        assert_eq!(got.len(), want_seen.len(), "{name}: hooks seen");
        for (i, ((hook, epoch, callback, logged), w)) in got.iter().zip(want_seen).enumerate() {
            assert_eq!((hook.as_str(), *epoch), (w["hook"].as_str().expect("hook"), w["epoch"].as_u64().expect("e")));
            same(&format!("{name}: #{i} {hook}: callback_metrics"), callback, &w["metrics"]);
            same(&format!("{name}: #{i} {hook}: logged_metrics"), logged, &w["logged"]);
        }
        drop(got);
        for (stage, key) in [(Stage::Validate, "validate"), (Stage::Test, "test")] {
            let mut cfg = quiet(dir.path(), 1);
            for (k, v) in case["trainer"].as_object().expect("args") {
                if k.starts_with("limit_") {
                    cfg = lightning_config(dir.path(), &[(k.clone(), v.clone())].into_iter().collect());
                }
            }
            let mut t = Trainer::new(cfg, None);
            let out = t.evaluate(&mut module(case), &mut data(case), &serde_json::json!({}), stage).expect(key);
            let want = case[key].as_array().expect("results");
            assert_eq!(out.per_dataloader.len(), want.len(), "{name}: {key} results");
            for (i, (g, w)) in out.per_dataloader.iter().zip(want).enumerate() {
                same(&format!("{name}: {key} DataLoader {i}"), g, w);
            }
        }
    }
}

#[test]
fn a_name_may_not_carry_the_dataloader_index_itself() {
    // Lightning's test_logging_raises (a): `/dataloader_idx_` in a name with
    // add_dataloader_idx=True is refused; with it False, the name is the user's.
    let mut ctx = crate::context::RunContext { current_hook: Some(Hook::ValidationStep), ..Default::default() };
    let opts = |add| crate::context::LogOptions {
        prog_bar: false,
        logger: true,
        on_step: None,
        on_epoch: None,
        reduce_fx: crate::context::ReduceFx::Mean,
        batch_size: None,
        add_dataloader_idx: add,
        sync_dist: false,
    };
    let err = ctx.log("foo/dataloader_idx_0", tch::Tensor::from(1.0), opts(true)).unwrap_err();
    assert!(err.message().contains("should not contain information about `dataloader_idx`"), "{}", err.message());
    ctx.log("foo/dataloader_idx_0", tch::Tensor::from(1.0), opts(false)).expect("the user's name");
}

#[test]
fn predict_gives_each_dataloaders_predictions_as_lightnings_list_of_lists() {
    // Lightning's `trainer.predict` with two predict DataLoaders returns a list per DataLoader
    // (8 points in batches of 4, then 6 in batches of 3), `predict_step` called for each batch.
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = Trainer::new(quiet(dir.path(), 1), None);
    let mut m = Regression::new();
    let out = t.predict(&mut m, &mut Points::with_second_val(Some(6)), &serde_json::json!({})).expect("predict");
    let sizes: Vec<Vec<i64>> = out.iter().map(|l| l.iter().map(|t| t.size()[0]).collect()).collect();
    assert_eq!(sizes, [vec![4, 4], vec![3, 3]]);
    assert_eq!(m.calls.borrow().iter().filter(|c| *c == "predict_step").count(), 4);
}
