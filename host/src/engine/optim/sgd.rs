//! torch.optim.SGD (`_single_tensor_sgd`).

use tch::Tensor;

use super::{add_alpha, add_alpha_, mul_, t, UpdateRule};
use crate::error::OpResult;

#[derive(Debug, Clone, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

pub struct Sgd;

impl UpdateRule for Sgd {
    type Hyper = SgdConfig;
    /// The momentum buffer.
    type State = Tensor;

    fn update(c: &SgdConfig, p: &Tensor, g: &Tensor, buf: &mut Option<Tensor>) -> OpResult<()> {
        let n = "SGD";
        let mut grad = if c.weight_decay != 0.0 { add_alpha(n, g, p, c.weight_decay)? } else { g.shallow_clone() };
        if c.momentum != 0.0 {
            let b = match buf.take() {
                None => t(n, t(n, grad.f_detach())?.f_to_dtype(grad.kind(), false, true))?,
                Some(b) => {
                    // buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                    mul_(n, &b, c.momentum)?;
                    add_alpha_(n, &b, &grad, 1.0 - c.dampening)?;
                    b
                }
            };
            grad = if c.nesterov { add_alpha(n, &grad, &b, c.momentum)? } else { b.shallow_clone() };
            *buf = Some(b);
        }
        // param.add_(grad, alpha=-lr)
        add_alpha_(n, p, &grad, -c.lr)?;
        Ok(())
    }

    fn lr(h: &SgdConfig) -> f64 {
        h.lr
    }
    fn set_lr(h: &mut SgdConfig, lr: f64) {
        h.lr = lr;
    }
    fn set_weight_decay(h: &mut SgdConfig, wd: f64) {
        h.weight_decay = wd;
    }
    fn momentum(h: &SgdConfig) -> Option<f64> {
        Some(h.momentum)
    }
    fn set_momentum(h: &mut SgdConfig, m: f64) {
        h.momentum = m;
    }
    fn save(buf: &Tensor) -> (f64, Vec<(&'static str, Tensor)>) {
        (0.0, vec![("momentum_buffer", buf.shallow_clone())])
    }
    fn load(_step: f64, get: &dyn Fn(&str) -> Option<Tensor>) -> Option<Tensor> {
        get("momentum_buffer")
    }
}
