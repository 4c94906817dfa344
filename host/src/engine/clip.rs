//! torch.nn.utils.clip_grad_norm_ (2-norm) and clip_grad_value_, in place on gradients.

use tch::Tensor;

use crate::error::{torch_message, OpError, OpResult};

fn op<T>(r: Result<T, tch::TchError>) -> OpResult<T> {
    r.map_err(|e| OpError::new("gradient_clip", torch_message(&e)))
}

/// Scales `grads` so their joint 2-norm is at most `max_norm` (torch's
/// `clip_coef = max_norm / (total_norm + 1e-6)`, clamped to 1). Returns the total norm.
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f64) -> OpResult<Option<Tensor>> {
    if grads.is_empty() {
        return Ok(None);
    }
    let norms: Vec<Tensor> = grads.iter().map(|g| op(g.f_norm())).collect::<OpResult<_>>()?;
    let total = op(op(Tensor::f_stack(&norms, 0))?.f_norm())?;
    let denom = op(total.f_add_scalar(1e-6))?;
    let coef = op(op(op(denom.f_full_like(max_norm))?.f_div(&denom))?.f_clamp_max(1.0))?;
    for g in grads {
        let _ = op(g.shallow_clone().f_mul_(&coef))?;
    }
    Ok(Some(total))
}

/// Clamps every gradient element to [-value, value].
pub fn clip_grad_value(grads: &[Tensor], value: f64) -> OpResult<()> {
    for g in grads {
        let _ = op(g.shallow_clone().f_clamp_(-value, value))?;
    }
    Ok(())
}
