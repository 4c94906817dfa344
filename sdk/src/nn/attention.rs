//! torch.nn.MultiheadAttention (equal query/key/value sizes, packed in-projection), as
//! torch's `F.multi_head_attention_forward` computes it: a Python function over ops in torch,
//! written here over the same ops.

use super::{empty, join, register_module, register_parameter, training, Linear};
use crate::{aten, init, Dtype, Tensor};

pub struct MultiheadAttention {
    pub in_proj_weight: Tensor,
    pub in_proj_bias: Option<Tensor>,
    pub out_proj: Linear,
    pub num_heads: i64,
    pub dropout: f64,
    pub batch_first: bool,
}

impl MultiheadAttention {
    pub fn new(path: &str, embed_dim: u32, num_heads: u32, dropout: f64, bias: bool, batch_first: bool) -> Self {
        let (e, h) = (i64::from(embed_dim), i64::from(num_heads));
        if h == 0 || e % h != 0 {
            aten::raise("multihead_attention", &format!("embed_dim {e} must be divisible by num_heads {h}"));
        }
        // torch: in_proj_weight and in_proj_bias empty, out_proj a Linear (its draws), then
        // `_reset_parameters`: xavier_uniform_ on in_proj_weight, both biases zeroed.
        let in_proj_weight = register_parameter(&join(path, "in_proj_weight"), &empty(&[3 * e, e]));
        let in_proj_bias = bias.then(|| {
            let b = empty(&[3 * e]);
            init::zeros_(&b);
            register_parameter(&join(path, "in_proj_bias"), &b)
        });
        let out_proj = Linear::new(&join(path, "out_proj"), embed_dim, embed_dim, bias);
        init::xavier_uniform_(&in_proj_weight, 1.0);
        if let Some(b) = &out_proj.bias {
            init::zeros_(b);
        }
        register_module(path, "MultiheadAttention");
        MultiheadAttention { in_proj_weight, in_proj_bias, out_proj, num_heads: h, dropout, batch_first }
    }

    /// The output and, with `need_weights`, the attention weights averaged over heads. A
    /// boolean `attn_mask` marks the positions not attended to; a float one is added.
    pub fn forward(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        attn_mask: Option<&Tensor>,
        need_weights: bool,
    ) -> (Tensor, Option<Tensor>) {
        for x in [query, key, value] {
            if x.shape().len() != 3 {
                aten::raise("multihead_attention", &format!("expected 3D query/key/value, got {:?}", x.shape()));
            }
        }
        let seq_first = |x: &Tensor| if self.batch_first { aten::transpose(x, 0, 1) } else { aten::alias(x) };
        let (q, k, v) = (seq_first(query), seq_first(key), seq_first(value));
        let (qs, ks) = (q.shape(), k.shape());
        let (tgt, bsz, embed, src) = (qs[0], qs[1], qs[2], ks[0]);
        let (heads, hd) = (self.num_heads, embed / self.num_heads);
        let w = aten::chunk(&self.in_proj_weight, 3, 0);
        let b: Vec<Option<Tensor>> = match &self.in_proj_bias {
            Some(b) => aten::chunk(b, 3, 0).into_iter().map(Some).collect(),
            None => vec![None, None, None],
        };
        let proj = |x: &Tensor, i: usize, len: i64| {
            aten::transpose(&aten::reshape(&aten::linear(x, &w[i], b[i].as_ref()), &[len, bsz * heads, hd]), 0, 1)
        };
        let (qh, kh, vh) = (proj(&q, 0, tgt), proj(&k, 1, src), proj(&v, 2, src));
        let mask = attn_mask.map(|m| {
            if m.dtype() == Dtype::Boolean {
                let device = qh.device();
                let zeros = aten::zeros(&m.shape(), Some(qh.dtype()), None, Some(&device), None);
                aten::masked_fill_scalar(&zeros, m, f64::NEG_INFINITY)
            } else {
                aten::alias(m)
            }
        });
        let p = if training() { self.dropout } else { 0.0 };
        let (out, weights) = if need_weights {
            let scaled = aten::mul_scalar(&qh, (1.0 / hd as f64).sqrt());
            let mut scores = aten::bmm(&scaled, &aten::transpose(&kh, -2, -1));
            if let Some(m) = &mask {
                scores = aten::add(&scores, m, 1);
            }
            let mut attn = aten::softmax(&scores, -1, None);
            if p > 0.0 {
                attn = aten::dropout(&attn, p, true);
            }
            let out = aten::bmm(&attn, &vh);
            let avg = aten::mean_dim(&aten::reshape(&attn, &[bsz, heads, tgt, src]), Some(&[1]), false, None);
            (aten::reshape(&aten::transpose(&out, 0, 1), &[tgt * bsz, embed]), Some(avg))
        } else {
            let split = |x: &Tensor, len: i64| aten::reshape(x, &[bsz, heads, len, hd]);
            let o = aten::scaled_dot_product_attention(
                &split(&qh, tgt),
                &split(&kh, src),
                &split(&vh, src),
                mask.as_ref(),
                p,
                false,
                None,
                false,
            );
            (aten::reshape(&aten::permute(&o, &[2, 0, 1, 3]), &[tgt * bsz, embed]), None)
        };
        let out = aten::reshape(&self.out_proj.forward(&out), &[tgt, bsz, embed]);
        let out = if self.batch_first { aten::transpose(&out, 0, 1) } else { out };
        (out, weights)
    }
}
