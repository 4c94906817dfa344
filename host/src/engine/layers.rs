//! torch.nn layers in the host, with torch's `reset_parameters` (same draws, same order) and
//! forward passes that call the same ATen kernels as torch.nn: the native baseline's
//! (`host/examples/native_bench.rs`, what `make bench` holds lthost to) and the functional
//! pieces the typed `tensor` interface offers (dropout, pools). Plugins' layers are their
//! SDK's, on the ATen operators. Parameters live in a [`ParamStore`]; a layer keeps shallow
//! clones of them.

use tch::{Device, Kind, Tensor};

use crate::engine::init;
use crate::engine::params::ParamStore;
use crate::error::{shape_of, OpError, OpResult};

fn torch<T>(op: &str, r: Result<T, tch::TchError>) -> OpResult<T> {
    r.map_err(|e| OpError::torch(op, e))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// torch.nn.Linear.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(ps: &mut ParamStore, path: &str, inp: i64, out: i64, bias: bool, dev: Device) -> OpResult<Self> {
        let w = init::kaiming_uniform_sqrt5(&[out, inp], dev)?;
        let weight = ps.add_parameter(&join(path, "weight"), w)?;
        let bias = if bias {
            Some(ps.add_parameter(&join(path, "bias"), init::fan_in_bias(&[out], inp, dev)?)?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    pub fn forward(&self, x: &Tensor) -> OpResult<Tensor> {
        x.f_linear(&self.weight, self.bias.as_ref()).map_err(|e| {
            OpError::new(
                "linear",
                format!(
                    "input {} with weight {}: {}",
                    shape_of(x),
                    shape_of(&self.weight),
                    crate::error::torch_message(&e)
                ),
            )
        })
    }
}

/// torch.nn.Conv2d.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

pub struct Conv2dSpec {
    pub in_channels: i64,
    pub out_channels: i64,
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
    pub bias: bool,
}

impl Conv2d {
    pub fn new(ps: &mut ParamStore, path: &str, s: &Conv2dSpec, dev: Device) -> OpResult<Self> {
        if s.groups <= 0 || s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0 {
            return Err(OpError::new(
                "conv2d",
                format!("channels {}→{} not divisible by groups {}", s.in_channels, s.out_channels, s.groups),
            ));
        }
        let shape = [s.out_channels, s.in_channels / s.groups, s.kernel[0], s.kernel[1]];
        let weight = ps.add_parameter(&join(path, "weight"), init::kaiming_uniform_sqrt5(&shape, dev)?)?;
        let bias = if s.bias {
            let (fan_in, _) = init::fans(&shape);
            Some(ps.add_parameter(&join(path, "bias"), init::fan_in_bias(&[s.out_channels], fan_in, dev)?)?)
        } else {
            None
        };
        Ok(Conv2d { weight, bias, stride: s.stride, padding: s.padding, dilation: s.dilation, groups: s.groups })
    }

    pub fn forward(&self, x: &Tensor) -> OpResult<Tensor> {
        x.f_conv2d(&self.weight, self.bias.as_ref(), self.stride, self.padding, self.dilation, self.groups).map_err(
            |e| {
                OpError::new(
                    "conv2d",
                    format!(
                        "input {} with weight {}: {}",
                        shape_of(x),
                        shape_of(&self.weight),
                        crate::error::torch_message(&e)
                    ),
                )
            },
        )
    }
}

/// torch.nn.BatchNorm1d/2d with running statistics (track_running_stats=True).
#[derive(Debug)]
pub struct BatchNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNorm {
    pub fn new(
        ps: &mut ParamStore,
        path: &str,
        n: i64,
        eps: f64,
        momentum: f64,
        affine: bool,
        dev: Device,
    ) -> OpResult<Self> {
        let (weight, bias) = if affine {
            (
                Some(ps.add_parameter(&join(path, "weight"), init::constant(&[n], 1.0, dev)?)?),
                Some(ps.add_parameter(&join(path, "bias"), init::constant(&[n], 0.0, dev)?)?),
            )
        } else {
            (None, None)
        };
        let running_mean = ps.add_buffer(&join(path, "running_mean"), init::constant(&[n], 0.0, dev)?)?;
        let running_var = ps.add_buffer(&join(path, "running_var"), init::constant(&[n], 1.0, dev)?)?;
        let nbt = torch("batch_norm", Tensor::f_zeros([], (Kind::Int64, dev)))?;
        let num_batches_tracked = ps.add_buffer(&join(path, "num_batches_tracked"), nbt)?;
        Ok(BatchNorm { weight, bias, running_mean, running_var, num_batches_tracked, eps, momentum })
    }

    pub fn forward(&self, x: &Tensor, training: bool) -> OpResult<Tensor> {
        let dims = x.dim();
        if !(2..=4).contains(&dims) {
            return Err(OpError::new(
                "batch_norm",
                format!("expected 2D, 3D (BatchNorm1d) or 4D (BatchNorm2d) input, got {}", shape_of(x)),
            ));
        }
        if training {
            let mut nbt = self.num_batches_tracked.shallow_clone();
            let _ = tch::no_grad(|| nbt.f_add_scalar_(1)).map_err(|e| OpError::torch("batch_norm", e))?;
        }
        x.f_batch_norm(
            self.weight.as_ref(),
            self.bias.as_ref(),
            Some(&self.running_mean),
            Some(&self.running_var),
            training,
            self.momentum,
            self.eps,
            true,
        )
        .map_err(|e| {
            OpError::new(
                "batch_norm",
                format!(
                    "input {} with {} features: {}",
                    shape_of(x),
                    self.running_mean.size()[0],
                    crate::error::torch_message(&e)
                ),
            )
        })
    }
}

/// torch.nn.LayerNorm.
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub shape: Vec<i64>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(ps: &mut ParamStore, path: &str, shape: &[i64], eps: f64, affine: bool, dev: Device) -> OpResult<Self> {
        let (weight, bias) = if affine {
            (
                Some(ps.add_parameter(&join(path, "weight"), init::constant(shape, 1.0, dev)?)?),
                Some(ps.add_parameter(&join(path, "bias"), init::constant(shape, 0.0, dev)?)?),
            )
        } else {
            (None, None)
        };
        Ok(LayerNorm { weight, bias, shape: shape.to_vec(), eps })
    }

    pub fn forward(&self, x: &Tensor) -> OpResult<Tensor> {
        x.f_layer_norm(self.shape.as_slice(), self.weight.as_ref(), self.bias.as_ref(), self.eps, true).map_err(|e| {
            OpError::new(
                "layer_norm",
                format!("input {} normalized over {:?}: {}", shape_of(x), self.shape, crate::error::torch_message(&e)),
            )
        })
    }
}

/// torch.nn.Embedding.
#[derive(Debug)]
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(ps: &mut ParamStore, path: &str, num: i64, dim: i64, dev: Device) -> OpResult<Self> {
        let weight = ps.add_parameter(&join(path, "weight"), init::normal(&[num, dim], 0.0, 1.0, dev)?)?;
        Ok(Embedding { weight })
    }

    pub fn forward(&self, idx: &Tensor) -> OpResult<Tensor> {
        Tensor::f_embedding(&self.weight, idx, -1, false, false).map_err(|e| {
            OpError::new(
                "embedding",
                format!(
                    "indices {} into table {}: {}",
                    shape_of(idx),
                    shape_of(&self.weight),
                    crate::error::torch_message(&e)
                ),
            )
        })
    }
}

/// torch.nn.LSTM; parameters in torch's `_flat_weights` order.
#[derive(Debug)]
pub struct Lstm {
    pub flat_weights: Vec<Tensor>,
    pub hidden: i64,
    pub layers: i64,
    pub bias: bool,
    pub batch_first: bool,
    pub dropout: f64,
    pub bidirectional: bool,
}

pub struct LstmSpec {
    pub input: i64,
    pub hidden: i64,
    pub layers: i64,
    pub bias: bool,
    pub batch_first: bool,
    pub dropout: f64,
    pub bidirectional: bool,
}

impl Lstm {
    pub fn new(ps: &mut ParamStore, path: &str, s: &LstmSpec, dev: Device) -> OpResult<Self> {
        if !(1..=1024).contains(&s.layers) || s.hidden < 1 || s.input < 1 {
            return Err(OpError::new("lstm", "input and hidden sizes must be positive and layers in 1..=1024"));
        }
        let dirs = if s.bidirectional { 2 } else { 1 };
        let stdv = 1.0 / (s.hidden as f64).sqrt();
        let mut flat = Vec::new();
        for layer in 0..s.layers {
            for dir in 0..dirs {
                let suffix = if dir == 1 { "_reverse" } else { "" };
                let inp = if layer == 0 { s.input } else { s.hidden * dirs };
                let mut shapes =
                    vec![("weight_ih", vec![4 * s.hidden, inp]), ("weight_hh", vec![4 * s.hidden, s.hidden])];
                if s.bias {
                    shapes.push(("bias_ih", vec![4 * s.hidden]));
                    shapes.push(("bias_hh", vec![4 * s.hidden]));
                }
                for (name, shape) in shapes {
                    // torch draws these in a second pass (reset_parameters over parameters()),
                    // which is the same order as creation.
                    let t = init::uniform(&shape, stdv, dev)?;
                    flat.push(ps.add_parameter(&join(path, &format!("{name}_l{layer}{suffix}")), t)?);
                }
            }
        }
        Ok(Lstm {
            flat_weights: flat,
            hidden: s.hidden,
            layers: s.layers,
            bias: s.bias,
            batch_first: s.batch_first,
            dropout: s.dropout,
            bidirectional: s.bidirectional,
        })
    }

    /// Returns (output, h_n, c_n).
    pub fn forward(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
        training: bool,
    ) -> OpResult<(Tensor, Tensor, Tensor)> {
        if x.dim() != 3 {
            return Err(OpError::new("lstm", format!("expected a 3D input, got {}", shape_of(x))));
        }
        let dirs = if self.bidirectional { 2 } else { 1 };
        let batch = if self.batch_first { x.size()[0] } else { x.size()[1] };
        let (h, c) = match state {
            Some((h, c)) => (h.shallow_clone(), c.shallow_clone()),
            None => {
                let z =
                    torch("lstm", Tensor::f_zeros([self.layers * dirs, batch, self.hidden], (x.kind(), x.device())))?;
                (z.shallow_clone(), z)
            }
        };
        x.f_lstm(
            &[h, c],
            &self.flat_weights,
            self.bias,
            self.layers,
            self.dropout,
            training,
            self.bidirectional,
            self.batch_first,
        )
        .map_err(|e| {
            OpError::new(
                "lstm",
                format!("input {} (hidden {}): {}", shape_of(x), self.hidden, crate::error::torch_message(&e)),
            )
        })
    }
}

/// torch.nn.MultiheadAttention (equal q/k/v embedding sizes, packed in-projection).
#[derive(Debug)]
pub struct MultiheadAttention {
    pub in_proj_weight: Tensor,
    pub in_proj_bias: Option<Tensor>,
    pub out_proj: Linear,
    pub heads: i64,
    pub dropout: f64,
    pub batch_first: bool,
}

impl MultiheadAttention {
    pub fn new(
        ps: &mut ParamStore,
        path: &str,
        embed: i64,
        heads: i64,
        dropout: f64,
        bias: bool,
        batch_first: bool,
        dev: Device,
    ) -> OpResult<Self> {
        if heads <= 0 || embed % heads != 0 {
            return Err(OpError::new(
                "multihead_attention",
                format!("embed_dim {embed} must be divisible by num_heads {heads}"),
            ));
        }
        // torch creates in_proj_weight (empty), in_proj_bias (empty), then out_proj (a Linear,
        // which draws its weight and bias), then `_reset_parameters` draws in_proj_weight
        // and zeroes both biases.
        let w_slot = init::empty(&[3 * embed, embed], dev)?;
        let in_proj_weight = ps.add_parameter(&join(path, "in_proj_weight"), w_slot)?;
        let in_proj_bias = if bias {
            Some(ps.add_parameter(&join(path, "in_proj_bias"), init::constant(&[3 * embed], 0.0, dev)?)?)
        } else {
            None
        };
        let out_proj = Linear::new(ps, &join(path, "out_proj"), embed, embed, bias, dev)?;
        let drawn = init::xavier_uniform(&[3 * embed, embed], dev)?;
        tch::no_grad(|| in_proj_weight.shallow_clone().f_copy_(&drawn))
            .map_err(|e| OpError::torch("multihead_attention", e))?;
        if let Some(b) = &out_proj.bias {
            let _ =
                tch::no_grad(|| b.shallow_clone().f_zero_()).map_err(|e| OpError::torch("multihead_attention", e))?;
        }
        Ok(MultiheadAttention { in_proj_weight, in_proj_bias, out_proj, heads, dropout, batch_first })
    }

    /// Returns the output and, if `need_weights`, the attention weights averaged over heads.
    pub fn forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        need_weights: bool,
        training: bool,
    ) -> OpResult<(Tensor, Option<Tensor>)> {
        let op = "multihead_attention";
        let t = |r: Result<Tensor, tch::TchError>| {
            r.map_err(|e| {
                OpError::new(
                    op,
                    format!(
                        "query {}, key {}, value {}: {}",
                        shape_of(q),
                        shape_of(k),
                        shape_of(v),
                        crate::error::torch_message(&e)
                    ),
                )
            })
        };
        for x in [q, k, v] {
            if x.dim() != 3 {
                return Err(OpError::new(op, format!("expected 3D query/key/value, got {}", shape_of(x))));
            }
        }
        let (q_is_k, k_is_v) = (std::ptr::eq(q, k), std::ptr::eq(k, v));
        let (q, k, v) = if self.batch_first {
            (t(q.f_transpose(0, 1))?, t(k.f_transpose(0, 1))?, t(v.f_transpose(0, 1))?)
        } else {
            (q.shallow_clone(), k.shallow_clone(), v.shallow_clone())
        };
        let (tgt, bsz, embed) = (q.size()[0], q.size()[1], q.size()[2]);
        let src = k.size()[0];
        let hd = embed / self.heads;
        let (qp, kp, vp) = self.in_projection(&q, &k, &v, q_is_k, k_is_v).map_err(|e| OpError::torch(op, e))?;
        let heads_first = |x: &Tensor, len: i64| t(t(x.f_reshape([len, bsz * self.heads, hd]))?.f_transpose(0, 1));
        let (qh, kh, vh) = (heads_first(&qp, tgt)?, heads_first(&kp, src)?, heads_first(&vp, src)?);
        let mask = match mask {
            Some(m) if m.kind() == Kind::Bool => {
                Some(t(t(Tensor::f_zeros(m.size(), (qh.kind(), qh.device())))?.f_masked_fill(m, f64::NEG_INFINITY))?)
            }
            Some(m) => Some(m.shallow_clone()),
            None => None,
        };
        let p = if training { self.dropout } else { 0.0 };
        let (out, weights) = if need_weights {
            let scaled = t(qh.f_mul_scalar((1.0 / hd as f64).sqrt()))?;
            let kt = t(kh.f_transpose(-2, -1))?;
            let scores = match &mask {
                Some(m) if m.dim() == 2 => t(t(m.f_unsqueeze(0))?.f_baddbmm(&scaled, &kt, 1, 1))?,
                Some(m) => t(m.f_baddbmm(&scaled, &kt, 1, 1))?,
                None => t(scaled.f_bmm(&kt))?,
            };
            let mut attn = t(scores.f_softmax(-1, None::<Kind>))?;
            if p > 0.0 {
                attn = t(attn.f_dropout(p, true))?;
            }
            let out = t(attn.f_bmm(&vh))?;
            let avg = t(t(attn.f_reshape([bsz, self.heads, tgt, src]))?.f_mean_dim(
                Some([1i64].as_slice()),
                false,
                None::<Kind>,
            ))?;
            (out, Some(avg))
        } else {
            let qv = t(qh.f_reshape([bsz, self.heads, tgt, hd]))?;
            let kv = t(kh.f_reshape([bsz, self.heads, src, hd]))?;
            let vv = t(vh.f_reshape([bsz, self.heads, src, hd]))?;
            let o =
                t(Tensor::f_scaled_dot_product_attention(&qv, &kv, &vv, mask.as_ref(), p, false, None::<f64>, false))?;
            (t(t(o.f_permute([2, 0, 1, 3]))?.f_reshape([tgt * bsz, embed]))?, None)
        };
        let out = if need_weights { t(t(out.f_transpose(0, 1))?.f_reshape([tgt * bsz, embed]))? } else { out };
        let out = self.out_proj.forward(&out)?;
        let out = t(out.f_reshape([tgt, bsz, embed]))?;
        let out = if self.batch_first { t(out.f_transpose(0, 1))? } else { out };
        Ok((out, weights))
    }

    /// torch's `_in_projection_packed` (self-attention in one product, key = value in two,
    /// otherwise three), as the SDK's layer computes it.
    fn in_projection(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        q_is_k: bool,
        k_is_v: bool,
    ) -> Result<(Tensor, Tensor, Tensor), tch::TchError> {
        let e = q.size()[2];
        let (w, b) = (&self.in_proj_weight, self.in_proj_bias.as_ref());
        // The `n` projections of one product, stacked first: [n, L, B, E].
        let unpack = |proj: &Tensor, n: i64| -> Result<Tensor, tch::TchError> {
            let s = proj.size();
            let p = proj.f_reshape([s[0], s[1], n, e])?.f_unsqueeze(0)?.f_transpose(0, -2)?;
            p.f_squeeze_dim(-2)?.f_contiguous()
        };
        if q_is_k && k_is_v {
            let p = unpack(&q.f_linear(w, b)?, 3)?;
            return Ok((p.f_select(0, 0)?, p.f_select(0, 1)?, p.f_select(0, 2)?));
        }
        if k_is_v {
            let ws = w.f_split_with_sizes([e, 2 * e], 0)?;
            let bs = b.map(|b| b.f_split_with_sizes([e, 2 * e], 0)).transpose()?;
            let qp = q.f_linear(&ws[0], bs.as_ref().map(|b| &b[0]))?;
            let kv = unpack(&k.f_linear(&ws[1], bs.as_ref().map(|b| &b[1]))?, 2)?;
            return Ok((qp, kv.f_select(0, 0)?, kv.f_select(0, 1)?));
        }
        let ws = w.f_chunk(3, 0)?;
        let bs: Vec<Option<Tensor>> = match b {
            Some(b) => b.f_chunk(3, 0)?.into_iter().map(Some).collect(),
            None => vec![None, None, None],
        };
        Ok((
            q.f_linear(&ws[0], bs[0].as_ref())?,
            k.f_linear(&ws[1], bs[1].as_ref())?,
            v.f_linear(&ws[2], bs[2].as_ref())?,
        ))
    }
}

/// `F.dropout(x, p, training)`.
pub fn dropout(x: &Tensor, p: f64, training: bool) -> OpResult<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(OpError::new("dropout", format!("probability must be in [0, 1], got {p}")));
    }
    x.f_dropout(p, training).map_err(|e| OpError::torch("dropout", e))
}

/// `F.max_pool2d(x, kernel, stride, padding)` (dilation 1, ceil_mode False).
pub fn max_pool2d(x: &Tensor, kernel: [i64; 2], stride: [i64; 2], padding: [i64; 2]) -> OpResult<Tensor> {
    x.f_max_pool2d(kernel, stride, padding, [1, 1], false).map_err(|e| pool_error("max_pool2d", x, &e))
}

/// `F.avg_pool2d(x, kernel, stride, padding)` (ceil_mode False, count_include_pad True).
pub fn avg_pool2d(x: &Tensor, kernel: [i64; 2], stride: [i64; 2], padding: [i64; 2]) -> OpResult<Tensor> {
    x.f_avg_pool2d(kernel, stride, padding, false, true, None::<i64>).map_err(|e| pool_error("avg_pool2d", x, &e))
}

fn pool_error(op: &str, x: &Tensor, e: &tch::TchError) -> OpError {
    OpError::new(op, format!("input {:?}: {}", x.size(), crate::error::torch_message(e)))
}
