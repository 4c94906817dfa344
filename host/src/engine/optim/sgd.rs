//! torch.optim.SGD (`_single_tensor_sgd`).

use tch::Tensor;

use super::Optimizer;
use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

pub struct Sgd {
    cfg: SgdConfig,
    momentum_buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    pub fn new(cfg: SgdConfig, num_params: usize) -> Self {
        Sgd { cfg, momentum_buffers: (0..num_params).map(|_| None).collect() }
    }
}

fn t(r: Result<Tensor, tch::TchError>) -> OpResult<Tensor> {
    r.map_err(|e| OpError::torch("optimizer.step(SGD)", e))
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &[Tensor], grads: &[Tensor]) -> OpResult<()> {
        let c = &self.cfg;
        tch::no_grad(|| {
            for (i, (p, g)) in params.iter().zip(grads).enumerate() {
                if !g.defined() {
                    continue;
                }
                let mut grad = if c.weight_decay != 0.0 { t(g.f_add(&t(p.f_mul_scalar(c.weight_decay))?))? } else { g.shallow_clone() };
                if c.momentum != 0.0 {
                    let buf = match self.momentum_buffers[i].take() {
                        None => t(grad.f_detach())?.copy(),
                        Some(mut buf) => {
                            let _ = t(buf.f_mul_scalar_(c.momentum))?;
                            let _ = t(buf.f_add_(&t(grad.f_mul_scalar(1.0 - c.dampening))?))?;
                            buf
                        }
                    };
                    grad = if c.nesterov { t(grad.f_add(&t(buf.f_mul_scalar(c.momentum))?))? } else { buf.shallow_clone() };
                    self.momentum_buffers[i] = Some(buf);
                }
                let _ = t(p.shallow_clone().f_add_(&t(grad.f_mul_scalar(-c.lr))?))?;
            }
            Ok(())
        })
    }
}
