//! torch.optim.Adam and AdamW (`_single_tensor_adam`), written so that each ATen kernel
//! sees the same operands in the same order as torch's: `addcmul_(g·(1-β2), g)` is
//! `(1-β2)·g·g` and `addcdiv_(m·(-step), d)` is `-step·m/d`, bit for bit.

use tch::Tensor;

use super::Optimizer;
use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
}

struct State {
    step: f64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Option<Tensor>,
}

pub struct Adam {
    cfg: AdamConfig,
    /// AdamW: decoupled weight decay.
    decoupled: bool,
    state: Vec<Option<State>>,
}

impl Adam {
    pub fn new(cfg: AdamConfig, decoupled: bool, num_params: usize) -> Self {
        Adam { cfg, decoupled, state: (0..num_params).map(|_| None).collect() }
    }
}

fn t(r: Result<Tensor, tch::TchError>) -> OpResult<Tensor> {
    r.map_err(|e| OpError::torch("optimizer.step(Adam)", e))
}

impl Optimizer for Adam {
    fn step(&mut self, params: &[Tensor], grads: &[Tensor]) -> OpResult<()> {
        let c = &self.cfg;
        let (beta1, beta2) = c.betas;
        tch::no_grad(|| {
            for (i, (p, g)) in params.iter().zip(grads).enumerate() {
                if !g.defined() {
                    continue;
                }
                let mut param = p.shallow_clone();
                if self.state[i].is_none() {
                    self.state[i] = Some(State {
                        step: 0.0,
                        exp_avg: t(p.f_zeros_like())?,
                        exp_avg_sq: t(p.f_zeros_like())?,
                        max_exp_avg_sq: if c.amsgrad { Some(t(p.f_zeros_like())?) } else { None },
                    });
                }
                let Some(st) = self.state[i].as_mut() else { continue };
                st.step += 1.0;
                let mut grad = g.shallow_clone();
                if c.weight_decay != 0.0 {
                    if self.decoupled {
                        let _ = t(param.f_mul_scalar_(1.0 - c.lr * c.weight_decay))?;
                    } else {
                        grad = t(grad.f_add(&t(param.f_mul_scalar(c.weight_decay))?))?;
                    }
                }
                let _ = t(st.exp_avg.f_lerp_(&grad, 1.0 - beta1))?;
                let _ = t(st.exp_avg_sq.f_mul_scalar_(beta2))?;
                let _ = t(st.exp_avg_sq.f_addcmul_(&t(grad.f_mul_scalar(1.0 - beta2))?, &grad))?;
                let bias_correction1 = 1.0 - beta1.powf(st.step);
                let bias_correction2 = 1.0 - beta2.powf(st.step);
                let step_size = c.lr / bias_correction1;
                let bc2_sqrt = bias_correction2.sqrt();
                let second = match st.max_exp_avg_sq.as_mut() {
                    Some(max) => {
                        let m = t(max.f_maximum(&st.exp_avg_sq))?;
                        max.f_copy_(&m).map_err(|e| OpError::torch("optimizer.step(Adam)", e))?;
                        max.shallow_clone()
                    }
                    None => st.exp_avg_sq.shallow_clone(),
                };
                let mut denom = t(t(second.f_sqrt())?.f_div_scalar(bc2_sqrt))?;
                let _ = t(denom.f_add_scalar_(c.eps))?;
                let _ = t(param.f_addcdiv_(&t(st.exp_avg.f_mul_scalar(-step_size))?, &denom))?;
            }
            Ok(())
        })
    }
}
