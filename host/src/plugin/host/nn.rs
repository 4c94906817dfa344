//! `lt:plugin/nn`: layers created, initialised and registered by the host.

use tch::Tensor;
use wasmtime::component::Resource;

use crate::engine::layers::{
    self, BatchNorm, Conv2d, Conv2dSpec, Embedding, LayerNorm, Linear, Lstm, LstmSpec, MultiheadAttention,
};
use crate::error::{OpError, OpResult};
use crate::plugin::bindings::nn::{self, Conv2dOptions, LstmOptions};
use crate::plugin::state::PluginState;

type R<T> = wasmtime::Result<T>;
type H = Resource<Tensor>;

/// The `dropout` resource: torch.nn.Dropout(p).
#[derive(Debug)]
pub struct Dropout {
    pub p: f64,
}

fn pair(p: (u32, u32)) -> [i64; 2] {
    [p.0 as i64, p.1 as i64]
}

impl PluginState {
    /// Runs a layer's forward on one input tensor and hands the result to the guest.
    fn forward_one<L: 'static>(
        &mut self,
        layer: &Resource<L>,
        input: &H,
        op: &str,
        f: impl FnOnce(&L, &Tensor, bool) -> OpResult<Tensor>,
    ) -> R<H> {
        let training = self.ctx.training;
        let l = self.get(layer, op)?;
        let x = self.tensor(input, op)?;
        let out = f(l, x, training)?;
        Ok(self.push(out, op)?)
    }

    fn register<L: Send + 'static>(
        &mut self,
        op: &str,
        kind: (&'static str, &str),
        make: impl FnOnce(&mut crate::engine::params::ParamStore, tch::Device) -> OpResult<L>,
    ) -> R<Resource<L>> {
        let dev = self.ctx.device;
        let layer = make(&mut self.ctx.params, dev)?;
        self.ctx.params.add_module(kind.1, kind.0);
        Ok(self.push_any(layer, op)?)
    }
}

impl nn::HostLinear for PluginState {
    fn new(&mut self, path: String, inp: u32, out: u32, bias: bool) -> R<Resource<Linear>> {
        self.register("linear", ("Linear", &path), |ps, dev| Linear::new(ps, &path, inp as i64, out as i64, bias, dev))
    }
    fn forward(&mut self, this: Resource<Linear>, input: H) -> R<H> {
        self.forward_one(&this, &input, "linear", |l, x, _| l.forward(x))
    }
    fn drop(&mut self, rep: Resource<Linear>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl nn::HostConv2d for PluginState {
    fn new(&mut self, path: String, inp: u32, out: u32, kernel: (u32, u32), o: Conv2dOptions) -> R<Resource<Conv2d>> {
        let spec = Conv2dSpec {
            in_channels: inp as i64,
            out_channels: out as i64,
            kernel: pair(kernel),
            stride: pair(o.stride),
            padding: pair(o.padding),
            dilation: pair(o.dilation),
            groups: o.groups as i64,
            bias: o.bias,
        };
        self.register("conv2d", ("Conv2d", &path), |ps, dev| Conv2d::new(ps, &path, &spec, dev))
    }
    fn forward(&mut self, this: Resource<Conv2d>, input: H) -> R<H> {
        self.forward_one(&this, &input, "conv2d", |l, x, _| l.forward(x))
    }
    fn drop(&mut self, rep: Resource<Conv2d>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl nn::HostBatchNorm for PluginState {
    fn new(&mut self, path: String, n: u32, eps: f64, momentum: f64, affine: bool) -> R<Resource<BatchNorm>> {
        self.register("batch_norm", ("BatchNorm", &path), |ps, dev| {
            BatchNorm::new(ps, &path, n as i64, eps, momentum, affine, dev)
        })
    }
    fn forward(&mut self, this: Resource<BatchNorm>, input: H) -> R<H> {
        self.forward_one(&this, &input, "batch_norm", |l, x, training| l.forward(x, training))
    }
    fn drop(&mut self, rep: Resource<BatchNorm>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl nn::HostLayerNorm for PluginState {
    fn new(&mut self, path: String, shape: Vec<i64>, eps: f64, affine: bool) -> R<Resource<LayerNorm>> {
        self.register("layer_norm", ("LayerNorm", &path), |ps, dev| LayerNorm::new(ps, &path, &shape, eps, affine, dev))
    }
    fn forward(&mut self, this: Resource<LayerNorm>, input: H) -> R<H> {
        self.forward_one(&this, &input, "layer_norm", |l, x, _| l.forward(x))
    }
    fn drop(&mut self, rep: Resource<LayerNorm>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl nn::HostEmbedding for PluginState {
    fn new(&mut self, path: String, num: u32, dim: u32) -> R<Resource<Embedding>> {
        self.register("embedding", ("Embedding", &path), |ps, dev| {
            Embedding::new(ps, &path, num as i64, dim as i64, dev)
        })
    }
    fn forward(&mut self, this: Resource<Embedding>, indices: H) -> R<H> {
        self.forward_one(&this, &indices, "embedding", |l, x, _| l.forward(x))
    }
    fn drop(&mut self, rep: Resource<Embedding>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl nn::HostLstm for PluginState {
    fn new(&mut self, path: String, input: u32, hidden: u32, o: LstmOptions) -> R<Resource<Lstm>> {
        let spec = LstmSpec {
            input: input as i64,
            hidden: hidden as i64,
            layers: o.num_layers as i64,
            bias: o.bias,
            batch_first: o.batch_first,
            dropout: o.dropout,
            bidirectional: o.bidirectional,
        };
        self.register("lstm", ("LSTM", &path), |ps, dev| Lstm::new(ps, &path, &spec, dev))
    }
    fn forward(&mut self, this: Resource<Lstm>, input: H, state: Option<(H, H)>) -> R<(H, H, H)> {
        let op = "lstm";
        let training = self.ctx.training;
        let l = self.get(&this, op)?;
        let x = self.tensor(&input, op)?;
        let st = match &state {
            Some((h, c)) => Some((self.tensor(h, op)?, self.tensor(c, op)?)),
            None => None,
        };
        let (out, h, c) = l.forward(x, st, training)?;
        Ok((self.push(out, op)?, self.push(h, op)?, self.push(c, op)?))
    }
    fn drop(&mut self, rep: Resource<Lstm>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl nn::HostDropout for PluginState {
    fn new(&mut self, p: f64) -> R<Resource<Dropout>> {
        if !(0.0..=1.0).contains(&p) {
            return Err(OpError::new("dropout", format!("probability must be in [0, 1], got {p}")).into());
        }
        Ok(self.push_any(Dropout { p }, "dropout")?)
    }
    fn forward(&mut self, this: Resource<Dropout>, input: H) -> R<H> {
        self.forward_one(&this, &input, "dropout", |l, x, training| layers::dropout(x, l.p, training))
    }
    fn drop(&mut self, rep: Resource<Dropout>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl nn::HostMultiheadAttention for PluginState {
    fn new(
        &mut self,
        path: String,
        embed: u32,
        heads: u32,
        dropout: f64,
        bias: bool,
        batch_first: bool,
    ) -> R<Resource<MultiheadAttention>> {
        self.register("multihead_attention", ("MultiheadAttention", &path), |ps, dev| {
            MultiheadAttention::new(ps, &path, embed as i64, heads as i64, dropout, bias, batch_first, dev)
        })
    }
    fn forward(
        &mut self,
        this: Resource<MultiheadAttention>,
        q: H,
        k: H,
        v: H,
        mask: Option<H>,
        need_weights: bool,
    ) -> R<(H, Option<H>)> {
        let op = "multihead_attention";
        let training = self.ctx.training;
        let l = self.get(&this, op)?;
        let (qt, kt, vt) = (self.tensor(&q, op)?, self.tensor(&k, op)?, self.tensor(&v, op)?);
        let m = match &mask {
            Some(m) => Some(self.tensor(m, op)?),
            None => None,
        };
        let (out, w) = l.forward(qt, kt, vt, m, need_weights, training)?;
        let out = self.push(out, op)?;
        let w = match w {
            Some(w) => Some(self.push(w, op)?),
            None => None,
        };
        Ok((out, w))
    }
    fn drop(&mut self, rep: Resource<MultiheadAttention>) -> R<()> {
        self.table.delete(rep)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(())
    }
}

impl nn::Host for PluginState {
    fn parameter(&mut self, path: String, init: H) -> R<H> {
        let op = "parameter";
        let t = self.tensor(&init, op)?;
        let dev = self.ctx.device;
        let copy = t
            .f_to_device(dev)
            .and_then(|c| c.f_detach())
            .and_then(|c| c.f_to_dtype(c.kind(), false, true))
            .map_err(|e| OpError::torch(op, e))?;
        let p = self.ctx.params.add_parameter(&path, copy)?;
        Ok(self.push(p, op)?)
    }

    fn max_pool2d(&mut self, input: H, kernel: (u32, u32), stride: (u32, u32), padding: (u32, u32)) -> R<H> {
        let x = self.tensor(&input, "max_pool2d")?;
        let out = layers::max_pool2d(x, pair(kernel), pair(stride), pair(padding))?;
        Ok(self.push(out, "max_pool2d")?)
    }

    fn avg_pool2d(&mut self, input: H, kernel: (u32, u32), stride: (u32, u32), padding: (u32, u32)) -> R<H> {
        let x = self.tensor(&input, "avg_pool2d")?;
        let out = layers::avg_pool2d(x, pair(kernel), pair(stride), pair(padding))?;
        Ok(self.push(out, "avg_pool2d")?)
    }

    fn num_parameters(&mut self) -> R<u64> {
        Ok(self.ctx.params.num_parameters() as u64)
    }
}
