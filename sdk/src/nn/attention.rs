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
        let (qp, kp, vp) = self.in_projection(&q, &k, &v, std::ptr::eq(query, key), std::ptr::eq(key, value));
        let heads_first = |x: &Tensor, len: i64| aten::transpose(&aten::reshape(x, &[len, bsz * heads, hd]), 0, 1);
        let (qh, kh, vh) = (heads_first(&qp, tgt), heads_first(&kp, src), heads_first(&vp, src));
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
            let kt = aten::transpose(&kh, -2, -1);
            let scores = match &mask {
                // torch adds a 2-D mask as (1, L, S), fused into the product.
                Some(m) if m.shape().len() == 2 => aten::baddbmm(&aten::unsqueeze(m, 0), &scaled, &kt, 1, 1),
                Some(m) => aten::baddbmm(m, &scaled, &kt, 1, 1),
                None => aten::bmm(&scaled, &kt),
            };
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

    /// torch's `_in_projection_packed`: self-attention (query, key and value one tensor) in
    /// one product with the whole in-projection, key = value in two, otherwise three; the
    /// same products torch makes, so the same roundings.
    fn in_projection(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        q_is_k: bool,
        k_is_v: bool,
    ) -> (Tensor, Tensor, Tensor) {
        let e = q.shape()[2];
        let (w, b) = (&self.in_proj_weight, self.in_proj_bias.as_ref());
        // proj.unflatten(-1, (n, E)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous():
        // the `n` projections of one product, stacked first.
        let unpack = |proj: &Tensor, n: i64| {
            let s = proj.shape();
            let p = aten::transpose(&aten::unsqueeze(&aten::reshape(proj, &[s[0], s[1], n, e]), 0), 0, -2);
            aten::contiguous(&aten::squeeze_dim(&p, -2), 0)
        };
        if k_is_v && q_is_k {
            let p = unpack(&aten::linear(q, w, b), 3);
            return (aten::select(&p, 0, 0), aten::select(&p, 0, 1), aten::select(&p, 0, 2));
        }
        if k_is_v {
            let ws = aten::split_with_sizes(w, &[e, 2 * e], 0);
            let bs = b.map(|b| aten::split_with_sizes(b, &[e, 2 * e], 0));
            let qp = aten::linear(q, &ws[0], bs.as_ref().map(|b| &b[0]));
            let kv = unpack(&aten::linear(k, &ws[1], bs.as_ref().map(|b| &b[1])), 2);
            return (qp, aten::select(&kv, 0, 0), aten::select(&kv, 0, 1));
        }
        let ws = aten::chunk(w, 3, 0);
        let bs: Vec<Option<Tensor>> = match b {
            Some(b) => aten::chunk(b, 3, 0).into_iter().map(Some).collect(),
            None => vec![None, None, None],
        };
        (
            aten::linear(q, &ws[0], bs[0].as_ref()),
            aten::linear(k, &ws[1], bs[1].as_ref()),
            aten::linear(v, &ws[2], bs[2].as_ref()),
        )
    }
}
