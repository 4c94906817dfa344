//! A small CNN on MNIST: conv(1→16, 3x3) → ReLU → max-pool 2 → conv(16→32, 3x3) → ReLU →
//! max-pool 2 → Linear(800→10), cross-entropy, Adam. The data are the four MNIST IDX files
//! (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`, optionally `.gz`) in the granted data directory; the last
//! `val_size` training images are the validation split. Transforms are tensor ops in the
//! plugin: scale to [0, 1] and normalise with MNIST's mean and std; with `augment`, each
//! training batch is also randomly cropped (28×28 from the image padded by 2) and flipped.

use lthost_sdk::nn::{Conv2d, Conv2dOptions, Linear};
use lthost_sdk::prelude::*;
use lthost_sdk::transforms;

const MEAN: f32 = 0.1307;
const STD: f32 = 0.3081;

struct Cnn {
    augment: bool,
    conv1: Conv2d,
    conv2: Conv2d,
    fc: Linear,
}

fn conv(path: &str, i: u32, o: u32) -> Conv2d {
    Conv2d::new(
        path,
        i,
        o,
        (3, 3),
        Conv2dOptions { stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1, bias: true },
    )
}

impl Cnn {
    fn forward(&self, x: &Tensor) -> Tensor {
        let x = lthost_sdk::nn::max_pool2d(&self.conv1.forward(x).relu(), (2, 2), (2, 2), (0, 0));
        let x = lthost_sdk::nn::max_pool2d(&self.conv2.forward(&x).relu(), (2, 2), (2, 2), (0, 0));
        let n = x.shape()[0];
        self.fc.forward(&x.view(&[n, -1]))
    }
}

impl LightningModule for Cnn {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"lr": 0.001, "batch_size": 64, "val_size": 5000, "augment": false})
    }

    fn configure(hp: &Hparams) -> Result<Self, String> {
        Ok(Cnn {
            augment: hp.bool_or("augment", false),
            conv1: conv("conv1", 1, 16),
            conv2: conv("conv2", 16, 32),
            fc: Linear::new("fc", 800, 10, true),
        })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        Optimizer::adam(hp.f64_or("lr", 0.001)).into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let x = if self.augment {
            transforms::random_horizontal_flip(&transforms::random_crop(&batch[0], (28, 28), 2), 0.5)
        } else {
            batch[0].copy()
        };
        let loss = F::cross_entropy(&self.forward(&x), &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        Some(loss)
    }

    fn validation_step(&mut self, batch: Batch, _batch_idx: u64) {
        let logits = self.forward(&batch[0]);
        log::log_prog_bar("val_loss", &F::cross_entropy(&logits, &batch[1]));
        log::log_prog_bar("val_acc", &logits.argmax(1, false).eq_tensor(&batch[1]).float().mean());
    }

    fn test_step(&mut self, batch: Batch, _batch_idx: u64) {
        let logits = self.forward(&batch[0]);
        log::log("test_acc", &logits.argmax(1, false).eq_tensor(&batch[1]).float().mean());
    }
}

/// The first of `names` present in `/data` (plain or gzipped), loaded by the host.
fn idx(names: &[&str]) -> Result<Tensor, String> {
    for n in names {
        for candidate in [n.to_string(), format!("{n}.gz")] {
            if std::path::Path::new("/data").join(&candidate).exists() {
                return Tensor::load(&candidate)
                    .pop()
                    .map(|(_, t)| t)
                    .ok_or_else(|| format!("{candidate} holds no tensor"));
            }
        }
    }
    Err(format!("none of {names:?} (or .gz) in the data directory"))
}

struct Mnist {
    train: Option<(Tensor, Tensor)>,
    val: Option<(Tensor, Tensor)>,
    test: Option<(Tensor, Tensor)>,
    batch_size: u32,
}

/// uint8 images [n, 28, 28] → normalised float [n, 1, 28, 28].
fn images(t: Tensor) -> Tensor {
    let n = t.shape()[0];
    transforms::normalize(&t.float().div_scalar(255.0).view(&[n, 1, 28, 28]), &[MEAN], &[STD])
}

impl DataModule for Mnist {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let x = images(idx(&["train-images-idx3-ubyte", "train-images.idx3-ubyte"])?);
        let y = idx(&["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"])?.long();
        let n = x.shape()[0];
        let val = (hp.u64_or("val_size", 5000) as i64).min(n / 5);
        let test = (
            images(idx(&["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"])?),
            idx(&["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"])?.long(),
        );
        Ok(Mnist {
            train: Some((x.narrow(0, 0, n - val), y.narrow(0, 0, n - val))),
            val: Some((x.narrow(0, n - val, val), y.narrow(0, n - val, val))),
            test: Some(test),
            batch_size: hp.u64_or("batch_size", 64) as u32,
        })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.train.take()?;
        Some(dataset(vec![x, y], self.batch_size, true))
    }

    fn val_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.val.take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }

    fn test_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.test.take()?;
        Some(dataset(vec![x, y], self.batch_size, false))
    }
}

export_plugin!(Cnn, Mnist);
