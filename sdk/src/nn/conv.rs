//! torch.nn.Conv2d.

use super::{empty, join, register_module, register_parameter};
use crate::{aten, init, Tensor};

/// Conv2d's settings past the channels and kernel.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dOptions {
    pub stride: (u32, u32),
    pub padding: (u32, u32),
    pub dilation: (u32, u32),
    pub groups: u32,
    pub bias: bool,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions { stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1, bias: true }
    }
}

/// torch.nn.Conv2d(in, out, kernel, ...), with torch's `reset_parameters`.
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub options: Conv2dOptions,
}

fn pair(p: (u32, u32)) -> [i64; 2] {
    [i64::from(p.0), i64::from(p.1)]
}

impl Conv2d {
    pub fn new(path: &str, in_channels: u32, out_channels: u32, kernel: (u32, u32), options: Conv2dOptions) -> Conv2d {
        let groups = options.groups.max(1);
        if in_channels % groups != 0 || out_channels % groups != 0 {
            crate::aten::raise(
                "conv2d",
                &format!("`{path}`: channels {in_channels}→{out_channels} not divisible by groups {groups}"),
            );
        }
        let shape =
            [i64::from(out_channels), i64::from(in_channels / groups), i64::from(kernel.0), i64::from(kernel.1)];
        let w = empty(&shape);
        init::kaiming_uniform_(&w, 5f64.sqrt(), init::Mode::FanIn, init::Nonlinearity::LeakyRelu(0.0));
        let weight = register_parameter(&join(path, "weight"), &w);
        let bias = options.bias.then(|| {
            let (fan_in, _) = init::fans(&shape);
            let b = empty(&[shape[0]]);
            let bound = if fan_in > 0 { 1.0 / (fan_in as f64).sqrt() } else { 0.0 };
            init::uniform_(&b, -bound, bound);
            register_parameter(&join(path, "bias"), &b)
        });
        register_module(path, "Conv2d");
        Conv2d { weight, bias, options }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let o = &self.options;
        aten::conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            &pair(o.stride),
            &pair(o.padding),
            &pair(o.dilation),
            i64::from(o.groups.max(1)),
        )
    }
}
