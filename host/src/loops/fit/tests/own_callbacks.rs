//! A module's own callbacks (a Lightning file's, run in its plugin): called before the
//! module at each hook they override, stopping the fit through `trainer.should_stop`, their
//! state in checkpoints and back on resume.
use super::*;
use crate::context::RunContext;
use crate::module::{FileCallback, Module, Optimization};
use anyhow::Result;
use tch::Tensor;

/// The native module with one callback of its own: it records its calls in the module's log
/// (`callback:<hook>`), sets `should_stop` at the end of epoch `stop_after`, and counts the
/// epochs it saw (its state).
struct WithOwnCallback {
    inner: Regression,
    stop_after: u64,
    epochs_seen: u64,
    restored: Option<String>,
}

impl Module for WithOwnCallback {
    fn name(&self) -> &str {
        "regression-with-callback"
    }
    fn configure(&mut self, ctx: &mut RunContext, hparams: &serde_json::Value) -> Result<crate::hparams::SavedHparams> {
        self.inner.configure(ctx, hparams)
    }
    fn configure_optimizers(&mut self, ctx: &mut RunContext) -> Result<Optimization> {
        self.inner.configure_optimizers(ctx)
    }
    fn training_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], i: u64) -> Result<Option<Tensor>> {
        self.inner.training_step(ctx, batch, i)
    }
    fn validation_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], i: u64) -> Result<()> {
        self.inner.validation_step(ctx, batch, i)
    }
    fn test_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], i: u64) -> Result<()> {
        self.inner.test_step(ctx, batch, i)
    }
    fn predict_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], i: u64) -> Result<Tensor> {
        self.inner.predict_step(ctx, batch, i)
    }
    fn implemented_hooks(&mut self, ctx: &mut RunContext) -> Result<Vec<Hook>> {
        self.inner.implemented_hooks(ctx)
    }
    fn hook(&mut self, ctx: &mut RunContext, hook: Hook, batch_idx: Option<u64>) -> Result<i32> {
        self.inner.hook(ctx, hook, batch_idx)
    }
    fn file_callbacks(&mut self, _ctx: &mut RunContext) -> Result<Vec<FileCallback>> {
        Ok(vec![
            FileCallback {
                state_key: "EpochCounter".into(),
                hooks: vec![Hook::OnTrainEpochEnd, Hook::OnSanityCheckStart],
            },
            FileCallback { state_key: "Timer".into(), hooks: Vec::new() },
        ])
    }
    fn file_callback_hook(&mut self, ctx: &mut RunContext, hook: Hook, _batch_idx: Option<u64>) -> Result<()> {
        self.inner.calls.borrow_mut().push(format!("callback:{}", hook.name()));
        assert_eq!(ctx.current_hook, Some(hook), "its logs follow the hook's rules");
        if hook == Hook::OnTrainEpochEnd {
            self.epochs_seen += 1;
            if ctx.current_epoch == self.stop_after {
                ctx.stop_set = Some(true);
            }
        }
        Ok(())
    }
    fn file_callback_states(&mut self, _ctx: &mut RunContext) -> Result<Vec<(String, String)>> {
        // A second one named as lthost's own Timer: kept apart from the Timer's state.
        Ok(vec![
            ("EpochCounter".into(), format!("{{\"epochs\": {}}}", self.epochs_seen)),
            ("Timer".into(), "{\"mine\": true}".into()),
        ])
    }
    fn load_file_callback_state(&mut self, _ctx: &mut RunContext, key: &str, state: &str) -> Result<()> {
        if key == "EpochCounter" {
            self.restored = Some(format!("{key} {state}"));
        } else {
            assert_eq!((key, state), ("Timer", "{\"mine\":true}"), "the file's Timer gets its own state back");
        }
        Ok(())
    }
}

#[test]
fn a_modules_own_callback_runs_first_stops_the_fit_and_keeps_its_state() {
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let saves = dir.path().join("saves");
    let every_epoch = CheckpointConfig {
        dirpath: Some(saves.clone()),
        save_top_k: -1,
        filename: Some("{epoch}".into()),
        ..CheckpointConfig::default()
    };
    let mut t = Trainer::new(TrainerConfig { enable_checkpointing: true, ..quiet(dir.path(), 5) }, None);
    t.checkpoint = every_epoch.clone();
    let mut m = WithOwnCallback { inner: Regression::new(), stop_after: 1, epochs_seen: 0, restored: None };
    let report = t.fit(&mut m, &mut Points::default(), &serde_json::json!({})).expect("fit");
    // `trainer.should_stop = True` at epoch 1's end: two epochs of five.
    assert_eq!((report.epochs, report.global_step), (2, 8));
    assert_eq!(m.epochs_seen, 2);
    let calls = m.inner.calls.borrow().clone();
    // Before the module, at every epoch end; and at a callback-only hook.
    let ends: Vec<&str> = calls.iter().map(String::as_str).filter(|c| c.contains("on_train_epoch_end")).collect();
    assert_eq!(
        ends,
        ["callback:on_train_epoch_end", "on_train_epoch_end", "callback:on_train_epoch_end", "on_train_epoch_end"]
    );
    assert!(calls.iter().any(|c| c == "callback:on_sanity_check_start"), "{calls:?}");
    // Its state is in each epoch's checkpoint under its key, and comes back on resume.
    let meta = crate::checkpoint::load(&saves.join("epoch=0.ckpt")).expect("epoch 0's checkpoint").meta;
    assert_eq!(meta.callbacks.get("EpochCounter"), Some(&serde_json::json!({"epochs": 1})));
    assert_eq!(meta.callbacks.get("file:Timer"), Some(&serde_json::json!({"mine": true})));
    assert!(meta.callbacks.get("Timer").is_some_and(|t| t.get("mine").is_none()), "lthost's Timer keeps its key");
    let mut t = Trainer::new(TrainerConfig { enable_checkpointing: true, ..quiet(dir.path(), 5) }, None);
    t.checkpoint = every_epoch;
    t.ckpt_path = Some(saves.join("epoch=0.ckpt").display().to_string());
    let mut resumed = WithOwnCallback { inner: Regression::new(), stop_after: 2, epochs_seen: 0, restored: None };
    let report = t.fit(&mut resumed, &mut Points::default(), &serde_json::json!({})).expect("resumed fit");
    assert_eq!(resumed.restored.as_deref(), Some("EpochCounter {\"epochs\":1}"));
    // Epochs 1 and 2 after the checkpoint, then the stop: three epochs of four batches in all.
    assert_eq!(resumed.epochs_seen, 2);
    assert_eq!(report.global_step, 12);
}
