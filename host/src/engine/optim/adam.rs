//! torch.optim.Adam and AdamW (`_single_tensor_adam`): torch's calls, `value=` and `alpha=`
//! included (one kernel, one rounding: what keeps bfloat16 and float16 parameters torch's).

use tch::Tensor;

use super::{add_alpha, addcdiv_, addcmul_, mul_, t, UpdateRule};
use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub amsgrad: bool,
}

#[derive(Debug, Clone)]
pub struct Hyper {
    pub cfg: AdamConfig,
    /// AdamW: decoupled weight decay.
    pub decoupled: bool,
}

pub struct State {
    pub step: f64,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    pub max_exp_avg_sq: Option<Tensor>,
}

pub struct Adam;

impl UpdateRule for Adam {
    type Hyper = Hyper;
    type State = State;

    fn update(h: &Hyper, p: &Tensor, g: &Tensor, state: &mut Option<State>) -> OpResult<()> {
        let n = if h.decoupled { "AdamW" } else { "Adam" };
        let c = &h.cfg;
        let (beta1, beta2) = c.betas;
        if state.is_none() {
            *state = Some(State {
                step: 0.0,
                exp_avg: t(n, p.f_zeros_like())?,
                exp_avg_sq: t(n, p.f_zeros_like())?,
                max_exp_avg_sq: if c.amsgrad { Some(t(n, p.f_zeros_like())?) } else { None },
            });
        }
        let Some(st) = state.as_mut() else { return Ok(()) };
        let param = p.shallow_clone();
        st.step += 1.0;
        let mut grad = g.shallow_clone();
        if c.weight_decay != 0.0 {
            if h.decoupled {
                mul_(n, &param, 1.0 - c.lr * c.weight_decay)?;
            } else {
                grad = add_alpha(n, &grad, &param, c.weight_decay)?;
            }
        }
        let _ = t(n, st.exp_avg.f_lerp_(&grad, 1.0 - beta1))?;
        mul_(n, &st.exp_avg_sq, beta2)?;
        addcmul_(n, &st.exp_avg_sq, &grad, &grad, 1.0 - beta2)?;
        let bias_correction1 = 1.0 - beta1.powf(st.step);
        let bias_correction2 = 1.0 - beta2.powf(st.step);
        let step_size = c.lr / bias_correction1;
        let bc2_sqrt = bias_correction2.sqrt();
        let second = match st.max_exp_avg_sq.as_mut() {
            Some(max) => {
                let m = t(n, max.f_maximum(&st.exp_avg_sq))?;
                max.f_copy_(&m).map_err(|e| OpError::torch(format!("optimizer.step({n})"), e))?;
                max.shallow_clone()
            }
            None => st.exp_avg_sq.shallow_clone(),
        };
        let mut denom = t(n, t(n, second.f_sqrt())?.f_div_scalar(bc2_sqrt))?;
        let _ = t(n, denom.f_add_scalar_(c.eps))?;
        addcdiv_(n, &param, &st.exp_avg, &denom, -step_size)?;
        Ok(())
    }

    fn lr(h: &Hyper) -> f64 {
        h.cfg.lr
    }
    fn set_lr(h: &mut Hyper, lr: f64) {
        h.cfg.lr = lr;
    }
    fn set_weight_decay(h: &mut Hyper, wd: f64) {
        h.cfg.weight_decay = wd;
    }
    fn momentum(h: &Hyper) -> Option<f64> {
        Some(h.cfg.betas.0)
    }
    fn set_momentum(h: &mut Hyper, m: f64) {
        h.cfg.betas.0 = m;
    }
    fn save(s: &State) -> (f64, Vec<(&'static str, Tensor)>) {
        let mut v = vec![("exp_avg", s.exp_avg.shallow_clone()), ("exp_avg_sq", s.exp_avg_sq.shallow_clone())];
        if let Some(m) = &s.max_exp_avg_sq {
            v.push(("max_exp_avg_sq", m.shallow_clone()));
        }
        (s.step, v)
    }
    fn load(step: f64, get: &dyn Fn(&str) -> Option<Tensor>) -> Option<State> {
        Some(State {
            step,
            exp_avg: get("exp_avg")?,
            exp_avg_sq: get("exp_avg_sq")?,
            max_exp_avg_sq: get("max_exp_avg_sq"),
        })
    }
}
