//! A GAN-style example of manual optimization (`automatic_optimization = False`): a
//! generator maps noise to 2-D points, a discriminator tells them from samples of a
//! Gaussian centred at (2, -1). Two optimizers over two parameter groups, stepped by the
//! plugin with `toggle`, `zero_grad`, `manual_backward`, `step`, `untoggle`.
//! Logs `dist`: how far the generated mean is from the true mean.

use lthost_sdk::nn::Linear;
use lthost_sdk::prelude::*;

struct Gan {
    g1: Linear,
    g2: Linear,
    d1: Linear,
    d2: Linear,
    target: Tensor,
}

impl Gan {
    fn generate(&self, n: i64) -> Tensor {
        let z = Tensor::randn(&[n, 4]);
        self.g2.forward(&self.g1.forward(&z).relu())
    }

    fn discriminate(&self, x: &Tensor) -> Tensor {
        self.d2.forward(&self.d1.forward(x).relu())
    }
}

impl LightningModule for Gan {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"lr": 0.01})
    }

    fn configure(_hp: &Hparams) -> Result<Self, String> {
        Ok(Gan {
            g1: Linear::new("generator.0", 4, 16, true),
            g2: Linear::new("generator.1", 16, 2, true),
            d1: Linear::new("discriminator.0", 2, 16, true),
            d2: Linear::new("discriminator.1", 16, 1, true),
            target: Tensor::from_slice_f32(&[2.0, -1.0], &[2]),
        })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        let lr = hp.f64_or("lr", 0.01);
        Optimization::manual(vec![
            Optimizer::adam(lr).betas(0.5, 0.999).group(&["generator"], None, None),
            Optimizer::adam(lr).betas(0.5, 0.999).group(&["discriminator"], None, None),
        ])
        // Stepped by the plugin (manual optimization steps its own schedulers).
        .scheduler(0, Scheduler::exponential_lr(0.999), Interval::Step)
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let real = &batch[0];
        let n = real.shape()[0];
        let ones = Tensor::ones(&[n, 1], Dtype::Float32);
        let zeros = Tensor::zeros(&[n, 1], Dtype::Float32);

        // Discriminator: real → 1, generated → 0.
        manual::toggle(1);
        let fake = self.generate(n).detach();
        let d_loss = &F::binary_cross_entropy_with_logits(&self.discriminate(real), &ones)
            + &F::binary_cross_entropy_with_logits(&self.discriminate(&fake), &zeros);
        manual::zero_grad(1);
        manual::manual_backward(&d_loss);
        manual::step(1);
        manual::untoggle(1);

        // Generator: make the discriminator say 1.
        manual::toggle(0);
        let fake = self.generate(n);
        let g_loss = F::binary_cross_entropy_with_logits(&self.discriminate(&fake), &ones);
        manual::zero_grad(0);
        manual::manual_backward(&g_loss);
        manual::step(0);
        manual::untoggle(0);
        manual::scheduler_step(0, None);

        let dist = (&fake.mean_dims(&[0], false) - &self.target).square().sum().sqrt();
        log::log_prog_bar("g_loss", &g_loss);
        log::log_prog_bar("d_loss", &d_loss);
        log::log_prog_bar("dist", &dist);
        log::log_scalar("g_lr", manual::lr(0, 0), log::options());
        None
    }
}

struct Gaussian {
    data: Option<Tensor>,
}

impl DataModule for Gaussian {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let n = hp.u64_or("samples", 512) as i64;
        let x = &Tensor::randn(&[n, 2]).mul_scalar(0.5) + &Tensor::from_slice_f32(&[2.0, -1.0], &[2]);
        Ok(Gaussian { data: Some(x) })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        Some(dataset(vec![self.data.take()?], 32, true))
    }
}

export_plugin!(Gan, Gaussian);
