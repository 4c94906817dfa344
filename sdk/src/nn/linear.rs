//! torch.nn.Linear.

use super::{empty, join, register_module, register_parameter};
use crate::{aten, init, Tensor};

/// torch.nn.Linear(in, out, bias): `weight` [out, in] and `bias` [out], drawn as torch's
/// `reset_parameters` (kaiming_uniform_(a=√5), then the bias from ±1/√in).
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(path: &str, in_features: u32, out_features: u32, bias: bool) -> Linear {
        let (inp, out) = (i64::from(in_features), i64::from(out_features));
        let w = empty(&[out, inp]);
        init::kaiming_uniform_(&w, 5f64.sqrt(), init::Mode::FanIn, init::Nonlinearity::LeakyRelu(0.0));
        let weight = register_parameter(&join(path, "weight"), &w);
        let bias = bias.then(|| {
            let b = empty(&[out]);
            let bound = if inp > 0 { 1.0 / (inp as f64).sqrt() } else { 0.0 };
            init::uniform_(&b, -bound, bound);
            register_parameter(&join(path, "bias"), &b)
        });
        register_module(path, "Linear");
        Linear { weight, bias }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        aten::linear(x, &self.weight, self.bias.as_ref())
    }
}
