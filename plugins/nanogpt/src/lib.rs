//! karpathy's nanoGPT (`model.py`), written as the torch code is written, on the generic
//! ATen ops: token and position embeddings, `n_layer` pre-norm blocks of causal
//! self-attention (`F.scaled_dot_product_attention(is_causal=True)`, or with `flash: false`
//! the masked-softmax path over a registered `tril` buffer) and a GELU MLP, a final
//! LayerNorm, and an output head tied to the token embedding (`wte.weight = lm_head.weight`).
//! Weights are drawn as nanoGPT draws them (the layers' own init at construction, then
//! `_init_weights` over the modules, then the scaled `c_proj` init), and AdamW gets
//! nanoGPT's decay (2-D and up) and no-decay groups. The data: 800 sequences of a
//! deterministic token stream (`next = (5 * t + 3) mod vocab`, started at each row's index),
//! targets shifted by one, every fourth row's first target ignored (`ignore_index=-1`).
//! `init_from`: a safetensors file of weights to start from (in the granted data directory).
//! tests/reference/nanogpt_reference.py is the same model in torch.

use lthost_sdk::nn::{self, Dropout, Embedding, LayerNorm, Linear};
use lthost_sdk::prelude::*;

struct Config {
    n_layer: i64,
    n_head: i64,
    n_embd: i64,
    block_size: i64,
    vocab_size: i64,
    bias: bool,
    flash: bool,
}

struct CausalSelfAttention {
    c_attn: Linear,
    c_proj: Linear,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    n_head: i64,
    n_embd: i64,
    /// The causal mask (nanoGPT's `bias` buffer), on the masked-softmax path only.
    mask: Option<Tensor>,
}

impl CausalSelfAttention {
    fn new(path: &str, c: &Config, dropout: f64) -> Self {
        let e = c.n_embd as u32;
        let c_attn = Linear::new(&nn::join(path, "c_attn"), e, 3 * e, c.bias);
        let c_proj = Linear::new(&nn::join(path, "c_proj"), e, e, c.bias);
        let mask = (!c.flash).then(|| {
            let b = c.block_size;
            let tril = aten::tril(&aten::ones(&[b, b], None, None, None, None), 0);
            nn::register_buffer(&nn::join(path, "bias"), &aten::view(&tril, &[1, 1, b, b]), true)
        });
        nn::register_module(path, "CausalSelfAttention");
        CausalSelfAttention {
            c_attn,
            c_proj,
            attn_dropout: Dropout::new(dropout),
            resid_dropout: Dropout::new(dropout),
            n_head: c.n_head,
            n_embd: c.n_embd,
            mask,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.shape();
        let (b, t, c) = (s[0], s[1], s[2]);
        let qkv = aten::split(&self.c_attn.forward(x), self.n_embd, 2);
        let heads = |u: &Tensor| aten::transpose(&aten::view(u, &[b, t, self.n_head, c / self.n_head]), 1, 2);
        let (q, k, v) = (heads(&qkv[0]), heads(&qkv[1]), heads(&qkv[2]));
        let y = match &self.mask {
            None => aten::scaled_dot_product_attention(&q, &k, &v, None, 0.0, true, None, false),
            Some(mask) => {
                let scale = 1.0 / (*k.shape().last().expect("a head dim") as f64).sqrt();
                let att = aten::mul_scalar(&aten::matmul(&q, &aten::transpose(&k, -2, -1)), scale);
                let m = aten::slice(&aten::slice(mask, 2, Some(0), Some(t), 1), 3, Some(0), Some(t), 1);
                let att = aten::masked_fill_scalar(&att, &aten::eq_scalar(&m, 0), f64::NEG_INFINITY);
                let att = self.attn_dropout.forward(&aten::softmax(&att, -1, None));
                aten::matmul(&att, &v)
            }
        };
        let y = aten::view(&aten::contiguous(&aten::transpose(&y, 1, 2), 0), &[b, t, c]);
        self.resid_dropout.forward(&self.c_proj.forward(&y))
    }
}

struct Mlp {
    c_fc: Linear,
    c_proj: Linear,
    dropout: Dropout,
}

impl Mlp {
    fn new(path: &str, c: &Config, dropout: f64) -> Self {
        let e = c.n_embd as u32;
        let m = Mlp {
            c_fc: Linear::new(&nn::join(path, "c_fc"), e, 4 * e, c.bias),
            c_proj: Linear::new(&nn::join(path, "c_proj"), 4 * e, e, c.bias),
            dropout: Dropout::new(dropout),
        };
        nn::register_module(path, "MLP");
        m
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.dropout.forward(&self.c_proj.forward(&aten::gelu(&self.c_fc.forward(x), "none")))
    }
}

struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(path: &str, c: &Config, dropout: f64) -> Self {
        let e = c.n_embd;
        let block = Block {
            ln_1: LayerNorm::with_bias(&nn::join(path, "ln_1"), &[e], 1e-5, true, c.bias),
            attn: CausalSelfAttention::new(&nn::join(path, "attn"), c, dropout),
            ln_2: LayerNorm::with_bias(&nn::join(path, "ln_2"), &[e], 1e-5, true, c.bias),
            mlp: Mlp::new(&nn::join(path, "mlp"), c, dropout),
        };
        nn::register_module(path, "Block");
        block
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x + &self.attn.forward(&self.ln_1.forward(x));
        &x + &self.mlp.forward(&self.ln_2.forward(&x))
    }
}

struct Gpt {
    wte: Embedding,
    wpe: Embedding,
    drop: Dropout,
    h: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Linear,
    block_size: i64,
    vocab_size: i64,
}

/// nanoGPT's `_init_weights` for one Linear: N(0, 0.02) weight, zero bias.
fn init_linear(l: &Linear) {
    init::normal_(&l.weight, 0.0, 0.02);
    if let Some(b) = &l.bias {
        init::zeros_(b);
    }
}

impl Gpt {
    fn new(c: &Config, dropout: f64) -> Self {
        let (v, e) = (c.vocab_size as u32, c.n_embd as u32);
        let mut wte = Embedding::new("transformer.wte", v, e);
        let wpe = Embedding::new("transformer.wpe", c.block_size as u32, e);
        let h: Vec<Block> = (0..c.n_layer).map(|i| Block::new(&format!("transformer.h.{i}"), c, dropout)).collect();
        let ln_f = LayerNorm::with_bias("transformer.ln_f", &[c.n_embd], 1e-5, true, c.bias);
        let lm_head = Linear::new("lm_head", e, v, false);
        // Weight tying: `self.transformer.wte.weight = self.lm_head.weight`.
        wte.weight = nn::register_parameter("transformer.wte.weight", &lm_head.weight);
        let gpt = Gpt {
            wte,
            wpe,
            drop: Dropout::new(dropout),
            h,
            ln_f,
            lm_head,
            block_size: c.block_size,
            vocab_size: c.vocab_size,
        };
        // `self.apply(self._init_weights)`: children before parents, in registration order.
        init::normal_(&gpt.wte.weight, 0.0, 0.02);
        init::normal_(&gpt.wpe.weight, 0.0, 0.02);
        for b in &gpt.h {
            init_linear(&b.attn.c_attn);
            init_linear(&b.attn.c_proj);
            init_linear(&b.mlp.c_fc);
            init_linear(&b.mlp.c_proj);
        }
        init_linear(&gpt.lm_head);
        // The residual projections, scaled by depth (over `named_parameters()`).
        let std = 0.02 / ((2 * c.n_layer) as f64).sqrt();
        for b in &gpt.h {
            init::normal_(&b.attn.c_proj.weight, 0.0, std);
            init::normal_(&b.mlp.c_proj.weight, 0.0, std);
        }
        gpt
    }

    fn loss(&self, idx: &Tensor, targets: &Tensor) -> Tensor {
        let t = idx.shape()[1];
        assert!(t <= self.block_size, "a sequence of {t} tokens, over the block size {}", self.block_size);
        let device = idx.device();
        let pos = aten::arange_start(0, t, Some(Dtype::Int64), None, Some(&device), None);
        let mut x = self.drop.forward(&(&self.wte.forward(idx) + &self.wpe.forward(&pos)));
        for b in &self.h {
            x = b.forward(&x);
        }
        let logits = self.lm_head.forward(&self.ln_f.forward(&x));
        let flat = aten::view(&logits, &[-1, self.vocab_size]);
        // F.cross_entropy(..., ignore_index=-1): reduction mean (1).
        aten::cross_entropy_loss(&flat, &aten::view(targets, &[-1]), None, 1, -1, 0.0)
    }
}

struct NanoGpt {
    gpt: Gpt,
}

impl LightningModule for NanoGpt {
    fn default_hparams() -> lthost_sdk::serde_json::Value {
        json!({
            "n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 16, "vocab_size": 32,
            "bias": false, "dropout": 0.0, "flash": true,
            "learning_rate": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95,
            "init_from": null,
        })
    }

    fn configure(hp: &Hparams) -> Result<Self, String> {
        let c = Config {
            n_layer: hp.u64_or("n_layer", 2) as i64,
            n_head: hp.u64_or("n_head", 4) as i64,
            n_embd: hp.u64_or("n_embd", 64) as i64,
            block_size: hp.u64_or("block_size", 16) as i64,
            vocab_size: hp.u64_or("vocab_size", 32) as i64,
            bias: hp.bool_or("bias", false),
            flash: hp.bool_or("flash", true),
        };
        if c.n_head == 0 || c.n_embd % c.n_head != 0 {
            return Err(format!("n_embd {} is not a multiple of n_head {}", c.n_embd, c.n_head));
        }
        let gpt = Gpt::new(&c, hp.f64_or("dropout", 0.0));
        // Pretrained weights (a safetensors file in the granted data directory), as
        // nanoGPT's `init_from` resumes from a checkpoint.
        if let Some(file) = hp.get("init_from").and_then(|v| v.as_str()) {
            nn::load_state_dict(file, true)?;
        }
        Ok(NanoGpt { gpt })
    }

    /// nanoGPT's `configure_optimizers`: every 2-D-and-up parameter decays, the rest not.
    fn configure_optimizers(&self, hp: &Hparams) -> Optimization {
        let names = nn::parameter_names();
        let dims = |n: &String| nn::get(n).map_or(0, |t| t.shape().len());
        let decay: Vec<&str> = names.iter().filter(|n| dims(n) >= 2).map(String::as_str).collect();
        let no_decay: Vec<&str> = names.iter().filter(|n| dims(n) < 2).map(String::as_str).collect();
        Optimizer::adamw(hp.f64_or("learning_rate", 1e-3))
            .betas(hp.f64_or("beta1", 0.9), hp.f64_or("beta2", 0.95))
            .group(&decay, None, Some(hp.f64_or("weight_decay", 0.1)))
            .group(&no_decay, None, Some(0.0))
            .into()
    }

    fn training_step(&mut self, batch: Batch, _batch_idx: u64) -> Option<Tensor> {
        let loss = self.gpt.loss(&batch[0], &batch[1]);
        log::log_prog_bar("train_loss", &loss);
        Some(loss)
    }
}

/// The token stream: row `i` starts at `i mod vocab`, then `next = (5 * t + 3) mod vocab`.
struct Tokens {
    data: Option<(Tensor, Tensor)>,
}

impl DataModule for Tokens {
    fn setup(_stage: Stage, hp: &Hparams) -> Result<Self, String> {
        let (rows, t, vocab) = (800i64, hp.u64_or("block_size", 16) as i64, hp.u64_or("vocab_size", 32) as i64);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..rows {
            let mut tok = i % vocab;
            let mut seq = vec![tok];
            for _ in 0..t {
                tok = (5 * tok + 3) % vocab;
                seq.push(tok);
            }
            x.extend_from_slice(&seq[..t as usize]);
            let mut target = seq[1..].to_vec();
            if i % 4 == 0 {
                target[0] = -1;
            }
            y.extend(target);
        }
        let x = Tensor::from_slice_i64(&x, &[rows, t]);
        let y = Tensor::from_slice_i64(&y, &[rows, t]);
        Ok(Tokens { data: Some((x, y)) })
    }

    fn train_dataset(&mut self) -> Option<Dataset> {
        let (x, y) = self.data.take()?;
        Some(dataset(vec![x, y], 8, false))
    }
}

export_plugin!(NanoGpt, Tokens);
