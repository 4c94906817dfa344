//! Lightning's `ParityModuleMNIST` (tests/parity_pytorch/models.py): Linear(784→128) → tanh
//! → BatchNorm1d(128) → Dropout(0.3) → Linear(128→10), cross-entropy, Adam(lr=0.02),
//! batch 128. MNIST cannot be downloaded here, so the data is MNIST-shaped and drawn from the
//! seeded generator: images `rand(N, 1, 28, 28)`, labels `randint(0, 10, N)`.

use lthost_sdk::nn::{BatchNorm, Dropout, Linear};
use lthost_sdk::prelude::*;

struct ParityMlp {
    c_d1: Linear,
    c_d1_bn: BatchNorm,
    c_d1_drop: Dropout,
    c_d2: Linear,
}

impl ParityMlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let n = x.shape()[0];
        let x = x.view(&[n, -1]);
        let x = self.c_d1.forward(&x).tanh();
        let x = self.c_d1_bn.forward(&x);
        let x = self.c_d1_drop.forward(&x);
        self.c_d2.forward(&x)
    }
}

impl LightningModule for ParityMlp {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"lr": 0.02})
    }

    fn configure(_hp: &Hparams) -> Result<Self, String> {
        Ok(ParityMlp {
            c_d1: Linear::new("c_d1", 784, 128, true),
            c_d1_bn: BatchNorm::new("c_d1_bn", 128, 1e-5, 0.1, true),
            c_d1_drop: Dropout::new(0.3),
            c_d2: Linear::new("c_d2", 128, 10, true),
        })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        Optimizer::adam(hp.f64_or("lr", 0.02)).into()
    }

    /// Logits, for the checkpoint test (the same model in torch must agree).
    fn predict_step(&mut self, batch: Batch, _batch_idx: u64) -> Tensor {
        self.forward(&batch[0])
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let y_hat = self.forward(&batch[0]);
        let loss = F::cross_entropy(&y_hat, &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        Some(loss)
    }
}

struct SyntheticMnist {
    data: Option<(Tensor, Tensor)>,
    images: Option<Tensor>,
    batch_size: u32,
}

impl DataModule for SyntheticMnist {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let n = hp.u64_or("dataset_len", 640) as i64;
        let x = Tensor::rand(&[n, 1, 28, 28]);
        let y = Tensor::randint(0, 10, &[n]);
        Ok(SyntheticMnist {
            images: Some(x.copy()),
            data: Some((x, y)),
            batch_size: hp.u64_or("batch_size", 128) as u32,
        })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.data.take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }

    fn predict_dataset(&mut self) -> Option<Dataset> {
        Some(dataset(vec![self.images.take()?], self.batch_size, false))
    }
}

export_plugin!(ParityMlp, SyntheticMnist);
