//! A module that implements every Lightning hook, for lthost's loop tests: the tests record
//! which hooks the host calls, in which order, and count steps, batches and validation runs.
//! Hyper-parameters: `skip_at` (on_train_batch_start returns -1 at that batch index),
//! `log_in` (a hook name where the module calls `self.log`, to test Lightning's rules),
//! `samples`, `batch_size`, `lr`, `scheduler` ("step" or "plateau"), `none_even`
//! (training_step returns None at even batch indices), `none_at` (... and at these global
//! steps).

use lthost_sdk::log::{self as lg};
use lthost_sdk::nn::Linear;
use lthost_sdk::prelude::*;

struct Recorder {
    /// Training steps seen, kept across resumes through on_save/on_load_checkpoint.
    seen: u64,
    layer: Linear,
    skip_at: Option<u64>,
    log_in: String,
    /// A metric sequence by epoch, logged as `scripted` in validation (EarlyStopping and
    /// ModelCheckpoint tests; "nan" for a NaN).
    script: Vec<f64>,
    /// Where `scripted` is logged: "validation_step" (the default) or "on_train_epoch_end".
    script_at: String,
    /// `scripted` is logged with on_step and on_epoch (`scripted_step` / `scripted_epoch`,
    /// and the bare name for callbacks).
    forked: bool,
    /// `val_loss` is logged with on_step=True too (per-batch rows of evaluation steps).
    val_on_step: bool,
    /// Logs `step` (100 + global step) and `epoch` (7) from training_step: Lightning uses
    /// them as the row's step and epoch.
    log_step_epoch: bool,
    /// training_step returns None at even batch indices (after logging).
    none_even: bool,
    /// training_step returns None at these global steps (after logging).
    none_at: Vec<u64>,
}

const ALL: &[Hook] = &[
    Hook::Setup,
    Hook::Teardown,
    Hook::ConfigureModel,
    Hook::OnFitStart,
    Hook::OnFitEnd,
    Hook::OnTrainStart,
    Hook::OnTrainEnd,
    Hook::OnTrainEpochStart,
    Hook::OnTrainEpochEnd,
    Hook::OnTrainBatchStart,
    Hook::OnTrainBatchEnd,
    Hook::OnValidationStart,
    Hook::OnValidationEnd,
    Hook::OnValidationEpochStart,
    Hook::OnValidationEpochEnd,
    Hook::OnValidationBatchStart,
    Hook::OnValidationBatchEnd,
    Hook::OnValidationModelEval,
    Hook::OnValidationModelTrain,
    Hook::OnValidationModelZeroGrad,
    Hook::OnTestStart,
    Hook::OnTestEnd,
    Hook::OnTestEpochStart,
    Hook::OnTestEpochEnd,
    Hook::OnTestBatchStart,
    Hook::OnTestBatchEnd,
    Hook::OnTestModelEval,
    Hook::OnTestModelTrain,
    Hook::OnPredictStart,
    Hook::OnPredictEnd,
    Hook::OnPredictEpochStart,
    Hook::OnPredictEpochEnd,
    Hook::OnPredictBatchStart,
    Hook::OnPredictBatchEnd,
    Hook::OnPredictModelEval,
    Hook::OnBeforeBatchTransfer,
    Hook::OnAfterBatchTransfer,
    Hook::OnBeforeZeroGrad,
    Hook::OnBeforeBackward,
    Hook::OnAfterBackward,
    Hook::OnBeforeOptimizerStep,
];

fn hook_name(h: Hook) -> String {
    format!("{h:?}").trim_start_matches("Hook::").to_string()
}

impl LightningModule for Recorder {
    fn configure(hp: &Hparams) -> Result<Self, String> {
        Ok(Recorder {
            seen: 0,
            layer: Linear::new("layer", 4, 1, true),
            skip_at: hp.get("skip_at").and_then(|v| v.as_u64()),
            log_in: hp.str_or("log_in", "").to_string(),
            script: hp
                .get("script")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_f64().or_else(|| x.as_str()?.parse().ok())).collect())
                .unwrap_or_default(),
            script_at: hp.str_or("script_at", "validation_step").to_string(),
            forked: hp.get("forked").and_then(|v| v.as_bool()).unwrap_or(false),
            val_on_step: hp.get("val_on_step").and_then(|v| v.as_bool()).unwrap_or(false),
            log_step_epoch: hp.get("log_step_epoch").and_then(|v| v.as_bool()).unwrap_or(false),
            none_even: hp.get("none_even").and_then(|v| v.as_bool()).unwrap_or(false),
            none_at: hp
                .get("none_at")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
                .unwrap_or_default(),
        })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        let opt = Optimizer::sgd(hp.f64_or("lr", 0.1));
        match hp.str_or("scheduler", "") {
            "step" => opt.with_scheduler(Scheduler::step_lr(1, 0.5), Interval::Epoch),
            "plateau" => Optimization::from(opt).scheduler_with(
                0,
                Scheduler::reduce_lr_on_plateau(0.5, 0),
                Interval::Epoch,
                1,
                Some("val_loss"),
                true,
            ),
            _ => opt.into(),
        }
    }

    fn training_step(&mut self, batch: Batch, batch_idx: u64) -> Option<Tensor> {
        let loss = F::mse_loss(&self.layer.forward(&batch[0]), &batch[1]);
        lg::log_prog_bar("train_loss", &loss);
        self.seen += 1;
        lg::log_scalar("seen", self.seen as f64, lg::options());
        lg::log_scalar("lr", lthost_sdk::optim::manual::lr(0, 0), lg::options());
        if self.log_step_epoch {
            lg::log_scalar("step", 100.0 + trainer::global_step() as f64, lg::options());
            lg::log_scalar("epoch", 7.0, lg::options());
        }
        if (self.none_even && batch_idx % 2 == 0) || self.none_at.contains(&trainer::global_step()) {
            return None;
        }
        Some(loss)
    }

    fn validation_step(&mut self, batch: Batch, _batch_idx: u64) {
        let loss = F::mse_loss(&self.layer.forward(&batch[0]), &batch[1]);
        lg::log_with("val_loss", &loss, lg::Options { on_step: self.val_on_step.then_some(true), ..lg::options() });
        if let Some(v) =
            self.script.get(trainer::current_epoch() as usize).filter(|_| self.script_at == "validation_step")
        {
            let forked = self.forked.then_some(true);
            lg::log_scalar("scripted", *v, lg::Options { on_step: forked, on_epoch: forked, ..lg::options() });
        }
    }

    fn test_step(&mut self, batch: Batch, _batch_idx: u64) {
        let loss = F::mse_loss(&self.layer.forward(&batch[0]), &batch[1]);
        lg::log("test_loss", &loss);
    }

    fn predict_step(&mut self, batch: Batch, _batch_idx: u64) -> Tensor {
        self.layer.forward(&batch[0])
    }

    fn on_save_checkpoint(&self) -> Option<Vec<u8>> {
        Some(self.seen.to_le_bytes().to_vec())
    }

    fn on_load_checkpoint(&mut self, state: &[u8]) -> Result<(), String> {
        let bytes: [u8; 8] = state.try_into().map_err(|_| format!("expected 8 bytes of state, got {}", state.len()))?;
        self.seen = u64::from_le_bytes(bytes);
        Ok(())
    }

    fn hooks() -> Vec<Hook> {
        ALL.to_vec()
    }

    fn on_hook(&mut self, hook: Hook, _stage: Stage, batch_idx: Option<u64>) -> i32 {
        if hook_name(hook) == self.log_in {
            lg::log_scalar("from_hook", 1.0, lg::options());
        }
        if hook == Hook::OnTrainEpochEnd && self.script_at == "on_train_epoch_end" {
            if let Some(v) = self.script.get(trainer::current_epoch() as usize) {
                lg::log_scalar("scripted", *v, lg::options());
            }
        }
        if hook == Hook::OnTrainBatchStart && batch_idx.is_some() && batch_idx == self.skip_at {
            return -1;
        }
        0
    }
}

struct Linearish {
    splits: Vec<Option<(Tensor, Tensor)>>,
    batch_size: u32,
    /// A value restored from checkpoints (Lightning's DataModule state_dict).
    restored: Option<Vec<u8>>,
}

impl DataModule for Linearish {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let n = hp.u64_or("samples", 16) as i64;
        let splits = (0..4)
            .map(|_| {
                let x = Tensor::randn(&[n, 4]);
                let y = x.sum_dims(&[1], true).mul_scalar(0.5);
                Some((x, y))
            })
            .collect();
        Ok(Linearish { splits, batch_size: hp.u64_or("batch_size", 4) as u32, restored: None })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.splits[0].take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }
    fn val_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.splits[1].take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }
    fn test_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.splits[2].take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }
    fn predict_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.splits[3].take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }

    fn state_dict(&self) -> Option<Vec<u8>> {
        Some(b"datamodule-state".to_vec())
    }

    fn load_state_dict(&mut self, state: &[u8]) -> Result<(), String> {
        if state != b"datamodule-state" {
            return Err("unexpected datamodule state".into());
        }
        self.restored = Some(state.to_vec());
        Ok(())
    }
}

export_plugin!(Recorder, Linearish);
