//! torch.optim.RMSprop (`_single_tensor_rmsprop`).

use tch::Tensor;

use super::{add_alpha, add_alpha_, addc, addcdiv_, addcmul_, mul_, t, UpdateRule};
use crate::error::OpResult;

#[derive(Debug, Clone, PartialEq)]
pub struct RmspropConfig {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
}

pub struct State {
    square_avg: Tensor,
    grad_avg: Option<Tensor>,
    momentum_buffer: Option<Tensor>,
}

pub struct Rmsprop;

impl UpdateRule for Rmsprop {
    type Hyper = RmspropConfig;
    type State = State;

    fn update(c: &RmspropConfig, p: &Tensor, g: &Tensor, state: &mut Option<State>) -> OpResult<()> {
        let n = "RMSprop";
        if state.is_none() {
            *state = Some(State {
                square_avg: t(n, p.f_zeros_like())?,
                grad_avg: if c.centered { Some(t(n, p.f_zeros_like())?) } else { None },
                momentum_buffer: if c.momentum > 0.0 { Some(t(n, p.f_zeros_like())?) } else { None },
            });
        }
        let Some(st) = state.as_mut() else { return Ok(()) };
        let grad = if c.weight_decay != 0.0 { add_alpha(n, g, p, c.weight_decay)? } else { g.shallow_clone() };
        mul_(n, &st.square_avg, c.alpha)?;
        addcmul_(n, &st.square_avg, &grad, &grad, 1.0 - c.alpha)?;
        let mut avg = match st.grad_avg.as_mut() {
            Some(ga) => {
                let _ = t(n, ga.f_lerp_(&grad, 1.0 - c.alpha))?;
                t(n, addc(n, &st.square_avg, ga, ga, -1.0, false, false)?.f_sqrt())?
            }
            None => t(n, st.square_avg.f_sqrt())?,
        };
        let _ = t(n, avg.f_add_scalar_(c.eps))?;
        let param = p.shallow_clone();
        match st.momentum_buffer.as_mut() {
            Some(buf) if c.momentum > 0.0 => {
                mul_(n, buf, c.momentum)?;
                addcdiv_(n, buf, &grad, &avg, 1.0)?;
                // param.add_(buf, alpha=-lr)
                add_alpha_(n, &param, buf, -c.lr)?;
            }
            _ => {
                addcdiv_(n, &param, &grad, &avg, -c.lr)?;
            }
        }
        Ok(())
    }

    fn lr(h: &RmspropConfig) -> f64 {
        h.lr
    }
    fn set_lr(h: &mut RmspropConfig, lr: f64) {
        h.lr = lr;
    }
    fn set_weight_decay(h: &mut RmspropConfig, wd: f64) {
        h.weight_decay = wd;
    }
    fn momentum(h: &RmspropConfig) -> Option<f64> {
        Some(h.momentum)
    }
    fn set_momentum(h: &mut RmspropConfig, m: f64) {
        h.momentum = m;
    }
    fn save(s: &State) -> (f64, Vec<(&'static str, Tensor)>) {
        let mut v = vec![("square_avg", s.square_avg.shallow_clone())];
        if let Some(g) = &s.grad_avg {
            v.push(("grad_avg", g.shallow_clone()));
        }
        if let Some(b) = &s.momentum_buffer {
            v.push(("momentum_buffer", b.shallow_clone()));
        }
        (0.0, v)
    }
    fn load(_step: f64, get: &dyn Fn(&str) -> Option<Tensor>) -> Option<State> {
        Some(State {
            square_avg: get("square_avg")?,
            grad_avg: get("grad_avg"),
            momentum_buffer: get("momentum_buffer"),
        })
    }
}
