//! Where the batch is when the module's batch hooks see it.
use super::*;
use crate::context::Stage;

#[test]
fn every_batch_hook_sees_the_batch_on_the_runs_device() {
    // Lightning's test_callback_batch_on_device (docs/lightning-tests/loops.md row 83): in the
    // batch start and end hooks of fit (training and validation), test and predict, the batch
    // is on the module's device. On the CPU here; tools/gpu-check.sh runs it with
    // LTHOST_TEST_ACCELERATOR=cuda.
    let accelerator = std::env::var("LTHOST_TEST_ACCELERATOR").unwrap_or_else(|_| "cpu".into());
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let seen: Rc<RefCell<Vec<(String, bool)>>> = Rc::default();
    let hparams = serde_json::json!({});
    for stage in [Stage::Fit, Stage::Test, Stage::Predict] {
        let mut cfg = quiet(dir.path(), 1);
        cfg.accelerator = accelerator.clone();
        let mut t = Trainer::new(cfg, None);
        let mut m = Regression::new();
        m.batch_devices = Some(Rc::clone(&seen));
        let data = &mut Points::default();
        match stage {
            Stage::Fit => t.fit(&mut m, data, &hparams).map(drop),
            Stage::Test => t.evaluate(&mut m, data, &hparams, stage).map(drop),
            _ => t.predict(&mut m, data, &hparams).map(drop),
        }
        .unwrap_or_else(|e| panic!("{stage:?} on {accelerator}: {e:#}"));
    }
    let seen = seen.borrow();
    let hooks: std::collections::BTreeSet<&str> = seen.iter().map(|(h, _)| h.as_str()).collect();
    let want = [
        "on_predict_batch_end",
        "on_predict_batch_start",
        "on_test_batch_end",
        "on_test_batch_start",
        "on_train_batch_end",
        "on_train_batch_start",
        "on_validation_batch_end",
        "on_validation_batch_start",
    ];
    assert_eq!(hooks.into_iter().collect::<Vec<_>>(), want);
    let off: Vec<&String> = seen.iter().filter(|(_, on)| !on).map(|(h, _)| h).collect();
    assert!(off.is_empty(), "a batch not on {accelerator} in {off:?}");
}
