//! What the evaluation loops run under: Lightning's `inference_mode` flag
//! (test_inference_mode.py::test_eval_inference_mode).
use super::*;
use crate::config::FastDevRun;
use crate::context::Stage;

#[test]
fn evaluation_runs_without_grad_and_in_inference_mode_when_asked_as_lightnings() {
    // tests/reference/native_reference.py `grad_modes()`: `(torch.is_grad_enabled(),
    // torch.is_inference_mode_enabled())` at on_validation_start, on_test_start and
    // on_predict_start, with `inference_mode` True and False (fast_dev_run). lthost reads the
    // same two facts off its own tensors: one made there is an inference tensor only in
    // inference mode, and an op on a leaf that requires grad records a graph only with grad on.
    let want = reference();
    for (flag, want) in want["grad_modes"].as_object().expect("grad_modes") {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let seen: Rc<RefCell<serde_json::Map<String, serde_json::Value>>> = Rc::default();
        let hparams = serde_json::json!({});
        for stage in [Stage::Validate, Stage::Test, Stage::Predict] {
            let mut cfg = quiet(dir.path(), 1);
            cfg.fast_dev_run = FastDevRun::Flag(true);
            cfg.inference_mode = flag == "true";
            let mut t = Trainer::new(cfg, None);
            let record = Rc::clone(&seen);
            t.callbacks.push(Box::new(Probe(move |hook: Hook, _: &HookInfo<'_>| {
                if matches!(hook, Hook::OnValidationStart | Hook::OnTestStart | Hook::OnPredictStart) {
                    let leaf = tch::Tensor::ones([1], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
                    let grad = (&leaf * 2.0).requires_grad();
                    let inference = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu)).is_inference();
                    record.borrow_mut().insert(hook.name().into(), serde_json::json!([grad, inference]));
                }
                Ok(CallbackAction::default())
            })));
            let (m, data) = (&mut Regression::new(), &mut Points::default());
            match stage {
                Stage::Predict => t.predict(m, data, &hparams).map(drop),
                _ => t.evaluate(m, data, &hparams, stage).map(drop),
            }
            .expect("the evaluation");
        }
        assert_eq!(serde_json::Value::Object(seen.borrow().clone()), *want, "inference_mode = {flag}");
    }
}
