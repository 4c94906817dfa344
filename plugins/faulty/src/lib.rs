//! A plugin that misbehaves on purpose, for lthost's bad-input tests. The `fault`
//! hyper-parameter picks what goes wrong in `training_step`:
//! none, trap, matmul, use-after-drop, non-scalar-loss, no-grad-loss, loop, alloc.

use lthost_sdk::nn::Linear;
use lthost_sdk::prelude::*;

struct Faulty {
    fault: String,
    layer: Linear,
}

impl LightningModule for Faulty {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"fault": "none"})
    }

    fn configure(hp: &Hparams) -> Result<Self, String> {
        let fault = hp.str_or("fault", "none").to_string();
        if fault == "configure" {
            return Err("refusing to configure (fault = configure)".into());
        }
        Ok(Faulty { fault, layer: Linear::new("layer", 4, 2, true) })
    }

    fn configure_optimizers(&self, _hp: &Hparams) -> Optimization {
        Optimizer::sgd(0.1).into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let out = self.layer.forward(&batch[0]);
        Some(match self.fault.as_str() {
            "trap" => panic!("the faulty plugin panics on purpose"),
            "matmul" => {
                let w = Tensor::ones(&[5, 3], Dtype::Float32);
                out.matmul(&w)
            }
            "use-after-drop" => {
                let t = Tensor::zeros(&[2], Dtype::Float32);
                let handle = t.take_handle();
                drop(unsafe { Tensor::from_handle(handle) });
                // Use the handle again after the host dropped it.
                let stale = unsafe { Tensor::from_handle(handle) };
                stale.mean()
            }
            "non-scalar-loss" => &out * 1.0,
            "no-grad-loss" => Tensor::full(&[], 1.0, Dtype::Float32),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if x == 42 {
                        break;
                    }
                }
                out.mean()
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    if hoard.len() == usize::MAX {
                        break;
                    }
                }
                out.mean()
            }
            _ => F::mse_loss(&out, &Tensor::zeros(&out.shape(), Dtype::Float32)),
        })
    }
}

struct Tiny {
    x: Option<Tensor>,
}

impl DataModule for Tiny {
    fn setup(_stage: Stage, _hp: &Hparams) -> Result<Self, String> {
        Ok(Tiny { x: Some(Tensor::randn(&[8, 4])) })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        Some(dataset(vec![self.x.take()?], 4, false))
    }
}

export_plugin!(Faulty, Tiny);
