//! A one-element tensor as the 0-dim tensor torch's scalars are (a loss, a logged value).

use tch::{TchError, Tensor};

/// `t` as a 0-dim tensor: `t` itself when it already is one (the usual case on the
/// per-step paths, where a `reshape` would be one more dispatched op), else `t.reshape([])`.
pub fn zero_dim(t: Tensor) -> Result<Tensor, TchError> {
    if t.dim() == 0 {
        Ok(t)
    } else {
        t.f_reshape([])
    }
}
