//! torch.nn.BatchNorm1d/2d and LayerNorm.

use super::{empty, join, register_buffer, register_module, register_parameter, training};
use crate::{aten, init, Dtype, Tensor};

fn affine(path: &str, shape: &[i64], bias: bool) -> (Tensor, Option<Tensor>) {
    let w = empty(shape);
    init::ones_(&w);
    let weight = register_parameter(&join(path, "weight"), &w);
    let bias = bias.then(|| {
        let b = empty(shape);
        init::zeros_(&b);
        register_parameter(&join(path, "bias"), &b)
    });
    (weight, bias)
}

/// torch.nn.BatchNorm1d / BatchNorm2d (by the input's rank): running statistics are
/// buffers, updated in training and used in evaluation.
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
    pub fn new(path: &str, num_features: u32, eps: f64, momentum: f64, affine_: bool) -> BatchNorm {
        let n = i64::from(num_features);
        let (weight, bias) = if affine_ {
            let (w, b) = affine(path, &[n], true);
            (Some(w), b)
        } else {
            (None, None)
        };
        let zeros = empty(&[n]);
        init::zeros_(&zeros);
        let running_mean = register_buffer(&join(path, "running_mean"), &zeros, true);
        let ones = empty(&[n]);
        init::ones_(&ones);
        let running_var = register_buffer(&join(path, "running_var"), &ones, true);
        let nbt = aten::zeros(&[], Some(Dtype::Int64), None, None, None);
        let num_batches_tracked = register_buffer(&join(path, "num_batches_tracked"), &nbt, true);
        register_module(path, "BatchNorm");
        BatchNorm { weight, bias, running_mean, running_var, num_batches_tracked, eps, momentum }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let train = training();
        if train {
            // As torch's _BatchNorm: a plain in-place add (an int buffer records no graph).
            aten::add_scalar_(&self.num_batches_tracked, 1, 1);
        }
        aten::batch_norm(
            x,
            self.weight.as_ref(),
            self.bias.as_ref(),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum,
            self.eps,
            true,
        )
    }
}

/// torch.nn.LayerNorm(normalized_shape, eps, elementwise_affine, bias).
pub struct LayerNorm {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub shape: Vec<i64>,
    pub eps: f64,
}

impl LayerNorm {
    /// With a weight and a bias when `affine` (torch's defaults).
    pub fn new(path: &str, normalized_shape: &[i64], eps: f64, affine_: bool) -> LayerNorm {
        Self::with_bias(path, normalized_shape, eps, affine_, affine_)
    }

    /// `bias: false`: a weight only (nanoGPT's LayerNorm(bias=False)).
    pub fn with_bias(path: &str, normalized_shape: &[i64], eps: f64, affine_: bool, bias: bool) -> LayerNorm {
        let (weight, bias) = if affine_ {
            let (w, b) = affine(path, normalized_shape, bias);
            (Some(w), b)
        } else {
            (None, None)
        };
        register_module(path, "LayerNorm");
        LayerNorm { weight, bias, shape: normalized_shape.to_vec(), eps }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        aten::layer_norm(x, &self.shape, self.weight.as_ref(), self.bias.as_ref(), self.eps, true)
    }
}
