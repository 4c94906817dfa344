//! torch.nn.init, with the exact arithmetic torch uses, so that the same seed gives the same
//! initial weights. Every function draws from libtorch's global generator in torch's order.

use tch::{Device, Kind, Tensor};

use crate::error::{OpError, OpResult};

/// An uninitialised float tensor on `device`.
pub fn empty(shape: &[i64], device: Device) -> OpResult<Tensor> {
    let mut n: i64 = 1;
    for &d in shape {
        if d < 0 {
            return Err(OpError::new("init", format!("negative dimension in parameter shape {shape:?}")));
        }
        n = n.saturating_mul(d);
    }
    if n > MAX_PARAM_ELEMENTS {
        return Err(OpError::new(
            "init",
            format!("parameter shape {shape:?} has {n} elements, over the limit of {MAX_PARAM_ELEMENTS}"),
        ));
    }
    Tensor::f_empty(shape, (Kind::Float, device)).map_err(|e| OpError::torch("init", e))
}

/// Largest parameter a plugin may ask the host to create (elements).
pub const MAX_PARAM_ELEMENTS: i64 = 1 << 30;

/// `init.uniform_(t, -bound, bound)`.
pub fn uniform(shape: &[i64], bound: f64, device: Device) -> OpResult<Tensor> {
    let mut t = empty(shape, device)?;
    let _ = t.f_uniform_(-bound, bound).map_err(|e| OpError::torch("init.uniform_", e))?;
    Ok(t)
}

/// `init.normal_(t, mean, std)`.
pub fn normal(shape: &[i64], mean: f64, std: f64, device: Device) -> OpResult<Tensor> {
    let mut t = empty(shape, device)?;
    let _ = t.f_normal_(mean, std).map_err(|e| OpError::torch("init.normal_", e))?;
    Ok(t)
}

pub fn constant(shape: &[i64], value: f64, device: Device) -> OpResult<Tensor> {
    let mut t = empty(shape, device)?;
    let _ = t.f_fill_(value).map_err(|e| OpError::torch("init.constant_", e))?;
    Ok(t)
}

/// torch's `_calculate_fan_in_and_fan_out`.
pub fn fans(shape: &[i64]) -> (i64, i64) {
    let receptive: i64 = shape.iter().skip(2).product();
    let fan_in = shape.get(1).copied().unwrap_or(1) * receptive;
    let fan_out = shape.first().copied().unwrap_or(1) * receptive;
    (fan_in, fan_out)
}

/// `init.kaiming_uniform_(w, a=math.sqrt(5))`, as in Linear/Conv `reset_parameters`.
pub fn kaiming_uniform_sqrt5(shape: &[i64], device: Device) -> OpResult<Tensor> {
    let (fan_in, _) = fans(shape);
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let std = gain / (fan_in as f64).sqrt();
    let bound = 3f64.sqrt() * std;
    uniform(shape, bound, device)
}

/// The bias draw in Linear/Conv `reset_parameters`: uniform(±1/sqrt(fan_in)).
pub fn fan_in_bias(shape: &[i64], fan_in: i64, device: Device) -> OpResult<Tensor> {
    let bound = if fan_in > 0 { 1.0 / (fan_in as f64).sqrt() } else { 0.0 };
    uniform(shape, bound, device)
}

/// `init.xavier_uniform_(w, gain=1)`.
pub fn xavier_uniform(shape: &[i64], device: Device) -> OpResult<Tensor> {
    let (fan_in, fan_out) = fans(shape);
    let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
    uniform(shape, 3f64.sqrt() * std, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_torch() {
        assert_eq!(fans(&[128, 784]), (784, 128));
        assert_eq!(fans(&[16, 3, 5, 5]), (75, 400));
    }

    #[test]
    fn kaiming_bound_is_inverse_sqrt_fan_in() {
        let _rng = crate::engine::torch_ext::global_rng_lock();
        tch::manual_seed(0);
        let w = kaiming_uniform_sqrt5(&[64, 100], Device::Cpu).unwrap();
        let max = w.abs().max().double_value(&[]);
        assert!(max <= 0.1 + 1e-7 && max > 0.09, "{max}");
    }
}
