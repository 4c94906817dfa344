//! torch.optim.Adagrad (`_single_tensor_adagrad`).

use tch::Tensor;

use super::{add_alpha, addcdiv_, addcmul_, t, UpdateRule};
use crate::error::OpResult;

#[derive(Debug, Clone, PartialEq)]
pub struct AdagradConfig {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
}

pub struct State {
    step: f64,
    sum: Tensor,
}

pub struct Adagrad;

impl UpdateRule for Adagrad {
    type Hyper = AdagradConfig;
    type State = State;

    fn update(c: &AdagradConfig, p: &Tensor, g: &Tensor, state: &mut Option<State>) -> OpResult<()> {
        let n = "Adagrad";
        if state.is_none() {
            *state = Some(State { step: 0.0, sum: t(n, p.f_full_like(c.initial_accumulator_value))? });
        }
        let Some(st) = state.as_mut() else { return Ok(()) };
        st.step += 1.0;
        let grad = if c.weight_decay != 0.0 { add_alpha(n, g, p, c.weight_decay)? } else { g.shallow_clone() };
        let clr = c.lr / (1.0 + (st.step - 1.0) * c.lr_decay);
        addcmul_(n, &st.sum, &grad, &grad, 1.0)?;
        let mut std = t(n, st.sum.f_sqrt())?;
        let _ = t(n, std.f_add_scalar_(c.eps))?;
        addcdiv_(n, p, &grad, &std, -clr)?;
        Ok(())
    }

    fn lr(h: &AdagradConfig) -> f64 {
        h.lr
    }
    fn set_lr(h: &mut AdagradConfig, lr: f64) {
        h.lr = lr;
    }
    fn set_weight_decay(h: &mut AdagradConfig, wd: f64) {
        h.weight_decay = wd;
    }
    fn save(s: &State) -> (f64, Vec<(&'static str, Tensor)>) {
        (s.step, vec![("sum", s.sum.shallow_clone())])
    }
    fn load(step: f64, get: &dyn Fn(&str) -> Option<Tensor>) -> Option<State> {
        Some(State { step, sum: get("sum")? })
    }
}
