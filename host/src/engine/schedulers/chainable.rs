//! StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR and LinearLR: each step derives the
//! new rate from the current one (torch's chainable `get_lr`).

use std::f64::consts::PI;

use super::LrScheduler;
use super::{BUILD, LOAD};
use crate::engine::optim::Optimizer;
use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, PartialEq)]
pub enum ChainableKind {
    Step { step_size: i64, gamma: f64 },
    MultiStep { milestones: Vec<i64>, gamma: f64 },
    Exponential { gamma: f64 },
    CosineAnnealing { t_max: i64, eta_min: f64 },
    Linear { start_factor: f64, end_factor: f64, total_iters: i64 },
}

pub struct Chainable {
    kind: ChainableKind,
    last_epoch: i64,
    base_lrs: Vec<f64>,
}

impl Chainable {
    pub fn new(kind: ChainableKind, opt: &mut dyn Optimizer) -> OpResult<Self> {
        match &kind {
            ChainableKind::Step { step_size, .. } if *step_size <= 0 => {
                return Err(OpError::new(BUILD, "StepLR: step_size must be positive"))
            }
            ChainableKind::CosineAnnealing { t_max, .. } if *t_max <= 0 => {
                return Err(OpError::new(BUILD, "CosineAnnealingLR: T_max must be positive"))
            }
            ChainableKind::Linear { start_factor, end_factor, total_iters } => {
                if !(*start_factor > 0.0 && *start_factor <= 1.0)
                    || !(0.0..=1.0).contains(end_factor)
                    || *total_iters <= 0
                {
                    return Err(OpError::new(
                        BUILD,
                        "LinearLR: start_factor in (0, 1], end_factor in [0, 1], total_iters > 0",
                    ));
                }
            }
            ChainableKind::MultiStep { gamma, .. }
            | ChainableKind::Exponential { gamma }
            | ChainableKind::Step { gamma, .. }
                if !(gamma.is_finite() && *gamma > 0.0) =>
            {
                return Err(OpError::new(BUILD, "scheduler gamma must be a positive number"));
            }
            ChainableKind::CosineAnnealing { eta_min, .. } if !eta_min.is_finite() => {
                return Err(OpError::new(BUILD, "CosineAnnealingLR: eta_min must be finite"))
            }
            _ => {}
        }
        let base_lrs = (0..opt.num_groups()).map(|g| opt.lr(g)).collect();
        let mut s = Chainable { kind, last_epoch: -1, base_lrs };
        s.step(opt, None)?;
        Ok(s)
    }

    fn next_lr(&self, lr: f64, base_lr: f64) -> f64 {
        let e = self.last_epoch;
        let initial = e == 0;
        match &self.kind {
            ChainableKind::Step { step_size, gamma } => {
                if e == 0 || e % step_size != 0 {
                    lr
                } else {
                    lr * gamma
                }
            }
            ChainableKind::MultiStep { milestones, gamma } => {
                let hits = milestones.iter().filter(|&&m| m == e).count();
                if hits == 0 {
                    lr
                } else {
                    lr * gamma.powf(hits as f64)
                }
            }
            ChainableKind::Exponential { gamma } => {
                if initial {
                    lr
                } else {
                    lr * gamma
                }
            }
            ChainableKind::CosineAnnealing { t_max, eta_min } => {
                let t = *t_max as f64;
                if initial {
                    lr
                } else if (e - 1 - t_max).rem_euclid(2 * t_max) == 0 {
                    lr + (base_lr - eta_min) * (1.0 - (PI / t).cos()) / 2.0
                } else {
                    (1.0 + (PI * e as f64 / t).cos()) / (1.0 + (PI * (e - 1) as f64 / t).cos()) * (lr - eta_min)
                        + eta_min
                }
            }
            ChainableKind::Linear { start_factor, end_factor, total_iters } => {
                if e == 0 {
                    lr * start_factor
                } else if e > *total_iters {
                    lr
                } else {
                    lr * (1.0
                        + (end_factor - start_factor)
                            / (*total_iters as f64 * start_factor + (e - 1) as f64 * (end_factor - start_factor)))
                }
            }
        }
    }
}

impl LrScheduler for Chainable {
    fn name(&self) -> &'static str {
        match self.kind {
            ChainableKind::Step { .. } => "StepLR",
            ChainableKind::MultiStep { .. } => "MultiStepLR",
            ChainableKind::Exponential { .. } => "ExponentialLR",
            ChainableKind::CosineAnnealing { .. } => "CosineAnnealingLR",
            ChainableKind::Linear { .. } => "LinearLR",
        }
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({"last_epoch": self.last_epoch, "base_lrs": self.base_lrs})
    }

    fn load_state(&mut self, s: &serde_json::Value) -> OpResult<()> {
        self.last_epoch =
            s["last_epoch"].as_i64().ok_or_else(|| OpError::new(LOAD, "scheduler state without last_epoch"))?;
        self.base_lrs = serde_json::from_value(s["base_lrs"].clone())
            .map_err(|e| OpError::new(LOAD, format!("scheduler base_lrs: {e}")))?;
        Ok(())
    }

    fn step(&mut self, opt: &mut dyn Optimizer, _metric: Option<f64>) -> OpResult<()> {
        self.last_epoch += 1;
        for g in 0..opt.num_groups() {
            let base = self.base_lrs.get(g).copied().unwrap_or_else(|| opt.lr(g));
            let lr = self.next_lr(opt.lr(g), base);
            opt.set_lr(g, lr);
        }
        Ok(())
    }
}
