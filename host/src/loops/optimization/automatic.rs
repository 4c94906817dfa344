//! Automatic optimization: check the loss, back-propagate it through libtorch's autograd
//! into the optimizer set's accumulators (scaled by 1/accumulate_grad_batches), and, on an
//! accumulation boundary, clip, step and zero the gradients.

use tch::Tensor;

use crate::error::PluginError;

/// Refuses a loss that cannot be optimized, naming the plugin and hook.
pub fn check_loss(plugin: &str, loss: &Tensor) -> Result<(), PluginError> {
    let fail = |detail: String| PluginError {
        plugin: plugin.into(),
        hook: "training_step".into(),
        op: None,
        detail,
        backtrace: None,
    };
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
        return Err(fail(
            "the loss does not require grad: it was not computed from any trainable parameter (or was detached)".into(),
        ));
    }
    Ok(())
}
