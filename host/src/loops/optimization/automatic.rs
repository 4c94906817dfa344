//! Automatic optimization: check the loss, back-propagate through libtorch's autograd to
//! fresh gradients (`torch.autograd.grad`, so no `.grad` accumulates: the semantics of
//! `zero_grad(set_to_none=True)`), then one optimizer step.

use anyhow::{anyhow, Result};
use tch::Tensor;

use crate::engine::optim::Optimizer;
use crate::error::{torch_message, PluginError};

/// Refuses a loss that cannot be optimized, naming the plugin and hook.
pub fn check_loss(plugin: &str, loss: &Tensor) -> Result<(), PluginError> {
    let fail = |detail: String| PluginError { plugin: plugin.into(), hook: "training_step".into(), op: None, detail, backtrace: None };
    if !loss.defined() {
        return Err(fail("returned an undefined tensor as the loss".into()));
    }
    if loss.numel() != 1 {
        return Err(fail(format!("the loss must be a scalar, got a tensor of shape {:?}", loss.size())));
    }
    if !loss.is_floating_point() {
        return Err(fail(format!("the loss must be floating point, got {:?}", loss.kind())));
    }
    if !loss.requires_grad() {
        return Err(fail("the loss does not require grad: it was not computed from any trainable parameter (or was detached)".into()));
    }
    Ok(())
}

/// Backward and step. Returns the gradients (for clipping and callbacks later).
pub fn step(params: &[Tensor], loss: &Tensor, optimizer: &mut dyn Optimizer) -> Result<Vec<Tensor>> {
    let root = loss.f_reshape([]).map_err(|e| anyhow!("backward: {}", torch_message(&e)))?;
    let grads = Tensor::f_run_backward(&[root], params, false, false).map_err(|e| anyhow!("backward: {}", torch_message(&e)))?;
    optimizer.step(params, &grads).map_err(|e| anyhow!("optimizer step: {e}"))?;
    Ok(grads)
}
