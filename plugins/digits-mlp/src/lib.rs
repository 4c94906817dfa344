//! The default example: an MLP on scikit-learn's 8×8 handwritten digits (1,797 images,
//! bundled in `data/digits.safetensors`, made by `make_data.py`).
//!
//! The model is a LightningModule (layers, steps, optimizer); the data is a DataModule that
//! reads the bundled file from the plugin's granted data directory through the host.

use lthost_sdk::nn::{Dropout, Linear};
use lthost_sdk::prelude::*;

struct DigitsMlp {
    /// Host calls made per training step for nothing but their cost (`make bench`).
    probe_calls: u64,
    hidden: Linear,
    dropout: Dropout,
    out: Linear,
}

impl DigitsMlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.hidden.forward(x).relu();
        self.out.forward(&self.dropout.forward(&h))
    }

    /// Loss and accuracy of a batch, logged under `prefix` (val, test).
    fn evaluate(&self, batch: &Batch, prefix: &str) {
        let logits = self.forward(&batch[0]);
        let loss = F::cross_entropy(&logits, &batch[1]);
        let acc = logits.argmax(1, false).eq_tensor(&batch[1]).float().mean();
        log::log_prog_bar(&format!("{prefix}_loss"), &loss);
        log::log_prog_bar(&format!("{prefix}_acc"), &acc);
    }
}

impl LightningModule for DigitsMlp {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"hidden": 128, "dropout": 0.1, "lr": 0.003, "batch_size": 32})
    }

    fn configure(hp: &Hparams) -> Result<Self, String> {
        let hidden = hp.u64_or("hidden", 128) as u32;
        Ok(DigitsMlp {
            probe_calls: hp.u64_or("probe_calls", 0),
            hidden: Linear::new("hidden", 64, hidden, true),
            dropout: Dropout::new(hp.f64_or("dropout", 0.1)),
            out: Linear::new("out", hidden, 10, true),
        })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        Optimizer::adam(hp.f64_or("lr", 0.003)).into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        for _ in 0..self.probe_calls {
            batch[0].numel();
        }
        let loss = F::cross_entropy(&self.forward(&batch[0]), &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        Some(loss)
    }

    fn validation_step(&mut self, batch: Batch, _batch_idx: u64) {
        self.evaluate(&batch, "val");
    }

    fn test_step(&mut self, batch: Batch, _batch_idx: u64) {
        self.evaluate(&batch, "test");
    }

    /// Class probabilities.
    fn predict_step(&mut self, batch: Batch, _batch_idx: u64) -> Tensor {
        self.forward(&batch[0]).softmax(-1)
    }
}

/// Reads `digits.safetensors` (uint8 pixels 0..16, int64 labels) from the granted data
/// directory and scales the pixels to [0, 1].
struct Digits {
    splits: Vec<(String, Tensor)>,
    batch_size: u32,
}

impl Digits {
    fn split(&mut self, name: &str, shuffle: bool) -> Option<Dataset> {
        let take = |key: String, all: &mut Vec<(String, Tensor)>| {
            all.iter().position(|(k, _)| *k == key).map(|i| all.remove(i).1)
        };
        let images = take(format!("{name}_images"), &mut self.splits)?;
        let labels = take(format!("{name}_labels"), &mut self.splits)?;
        let x = images.float().div_scalar(16.0);
        Some(dataset(vec![x, labels], self.batch_size, shuffle))
    }
}

impl DataModule for Digits {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let splits = Tensor::load(hp.str_or("data_file", "digits.safetensors"));
        Ok(Digits { splits, batch_size: hp.u64_or("batch_size", 32) as u32 })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        self.split("train", true)
    }

    fn val_dataset(&mut self) -> Option<Dataset> {
        self.split("val", false)
    }

    fn test_dataset(&mut self) -> Option<Dataset> {
        self.split("test", false)
    }

    fn predict_dataset(&mut self) -> Option<Dataset> {
        self.split("test", false)
    }
}

export_plugin!(DigitsMlp, Digits);
