//! A small transformer (make bench's fourth workload; bench/run_torch.py has it in torch):
//! Embedding(16, 32) → one post-norm encoder block (MultiheadAttention(32, 4 heads,
//! batch_first), residual, LayerNorm; Linear(32→64) → ReLU → Linear(64→32), residual,
//! LayerNorm) → mean over the sequence → Linear(32→2); cross-entropy, Adam(1e-3), batch 32, on
//! 512 random sequences of 24 tokens labelled by the parity of their sum.

use lthost_sdk::nn::{Embedding, LayerNorm, Linear, MultiheadAttention};
use lthost_sdk::prelude::*;

struct TinyTransformer {
    emb: Embedding,
    attn: MultiheadAttention,
    ln1: LayerNorm,
    ff1: Linear,
    ff2: Linear,
    ln2: LayerNorm,
    head: Linear,
}

impl LightningModule for TinyTransformer {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({"lr": 0.001})
    }

    fn configure(_hp: &Hparams) -> Result<Self, String> {
        Ok(TinyTransformer {
            emb: Embedding::new("emb", 16, 32),
            attn: MultiheadAttention::new("attn", 32, 4, 0.0, true, true),
            ln1: LayerNorm::new("ln1", &[32], 1e-5, true),
            ff1: Linear::new("ff1", 32, 64, true),
            ff2: Linear::new("ff2", 64, 32, true),
            ln2: LayerNorm::new("ln2", &[32], 1e-5, true),
            head: Linear::new("head", 32, 2, true),
        })
    }

    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        Optimizer::adam(hp.f64_or("lr", 0.001)).into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let x = self.emb.forward(&batch[0]);
        let (a, _weights) = self.attn.forward(&x, &x, &x, None, true);
        let x = self.ln1.forward(&(&x + &a));
        let f = self.ff2.forward(&self.ff1.forward(&x).relu());
        let x = self.ln2.forward(&(&x + &f));
        let logits = self.head.forward(&x.mean_dims(&[1], false));
        let loss = F::cross_entropy(&logits, &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        Some(loss)
    }
}

struct Tokens {
    data: Option<(Tensor, Tensor)>,
}

impl DataModule for Tokens {
    fn setup(_stage: Stage, _hp: &Hparams) -> Result<Self, String> {
        let x = Tensor::randint(0, 16, &[512, 24]);
        let y = x.sum_dims(&[1], false).binary_scalar(lthost_sdk::BinaryOp::Remainder, 2.0).long();
        Ok(Tokens { data: Some((x, y)) })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.data.take()?;
        Some(dataset(vec![x, y], 32, false))
    }
}

export_plugin!(TinyTransformer, Tokens);
