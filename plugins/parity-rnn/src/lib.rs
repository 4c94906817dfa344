//! Lightning's `ParityModuleRNN` (tests/parity_pytorch/models.py): LSTM(10→20, batch_first)
//! + Linear(20→5), MSE loss, Adam(lr=0.02), on `AverageDataset` (300 sequences of 100 steps
//! of 10 features from seeded randn; target = top half + bottom half rolled by 1), batch 30.
//!
//! Hyper-parameters for the loop tests against Lightning (tests/e2e/training_options.rs):
//! `optimizer` ("adam", the default, or "sgd": plain SGD, whose steps show a loss scaled by
//! gradient accumulation, where Adam's would not), `plateau` (`{"interval": "step" |
//! "epoch", "patience": n, "factor": f}`: a ReduceLROnPlateau monitoring `train_loss`) and
//! `log_lr` (log the learning rate each step uses as `lr`).

use lthost_sdk::nn::{Linear, Lstm, LstmOptions};
use lthost_sdk::prelude::*;

struct ParityRnn {
    rnn: Lstm,
    linear_out: Linear,
    log_lr: bool,
}

impl LightningModule for ParityRnn {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"lr": 0.02})
    }

    fn configure(hp: &Hparams) -> Result<Self, String> {
        let opts = LstmOptions { num_layers: 1, bias: true, batch_first: true, dropout: 0.0, bidirectional: false };
        Ok(ParityRnn {
            rnn: Lstm::new("rnn", 10, 20, opts),
            linear_out: Linear::new("linear_out", 20, 5, true),
            log_lr: hp.bool_or("log_lr", false),
        })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        let lr = hp.f64_or("lr", 0.02);
        let optimizer = match hp.str_or("optimizer", "adam") {
            "sgd" => Optimizer::sgd(lr),
            "adagrad" => Optimizer::adagrad(lr),
            _ => Optimizer::adam(lr),
        };
        let Some(plateau) = hp.get("plateau") else { return optimizer.into() };
        let interval = match plateau["interval"].as_str() {
            Some("step") => Interval::Step,
            _ => Interval::Epoch,
        };
        let factor = plateau["factor"].as_f64().unwrap_or(0.1);
        let patience = plateau["patience"].as_u64().unwrap_or(10) as u32;
        Optimization::from(optimizer).scheduler_with(
            0,
            Scheduler::reduce_lr_on_plateau(factor, patience),
            interval,
            1,
            Some("train_loss"),
            true,
        )
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let (seq, _h, _c) = self.rnn.forward(&batch[0], None);
        let y_hat = self.linear_out.forward(&seq);
        let loss = F::mse_loss(&y_hat, &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        if self.log_lr {
            log::log_scalar("lr", manual::lr(0, 0), log::options());
        }
        Some(loss)
    }
}

/// Lightning's `AverageDataset`.
struct AverageDataset {
    data: Option<(Tensor, Tensor)>,
    batch_size: u32,
}

impl DataModule for AverageDataset {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let len = hp.u64_or("dataset_len", 300) as i64;
        let seq = hp.u64_or("sequence_len", 100) as i64;
        let input = Tensor::randn(&[len, seq, 10]);
        let halves = input.chunk(2, -1);
        let output = &halves[0] + &halves[1].roll(1, -1);
        Ok(AverageDataset { data: Some((input, output)), batch_size: hp.u64_or("batch_size", 30) as u32 })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.data.take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }
}

export_plugin!(ParityRnn, AverageDataset);
