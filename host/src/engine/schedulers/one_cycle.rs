//! OneCycleLR: warm up to `max_lr` then anneal to `max_lr / div / final_div`, cycling
//! momentum (or Adam's beta1) the other way.

use std::f64::consts::PI;

use super::LrScheduler;
use super::{BUILD, LOAD, STEP};
use crate::engine::optim::Optimizer;
use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, PartialEq)]
pub struct OneCycleConfig {
    pub max_lr: f64,
    pub total_steps: i64,
    pub pct_start: f64,
    /// Cosine (true) or linear annealing.
    pub anneal_cos: bool,
    pub cycle_momentum: bool,
    pub base_momentum: f64,
    pub max_momentum: f64,
    pub div_factor: f64,
    pub final_div_factor: f64,
    pub three_phase: bool,
}

#[derive(Clone, Copy)]
enum Point {
    Initial,
    Max,
    Min,
}

struct Phase {
    end_step: f64,
    lr: (Point, Point),
    /// Momentum from → to: true = max_momentum, false = base_momentum.
    momentum: (bool, bool),
}

pub struct OneCycle {
    cfg: OneCycleConfig,
    phases: Vec<Phase>,
    last_epoch: i64,
}

impl OneCycle {
    pub fn new(cfg: OneCycleConfig, opt: &mut dyn Optimizer) -> OpResult<Self> {
        let finite_pos = |x: f64| x.is_finite() && x > 0.0;
        if cfg.total_steps <= 0
            || !(0.0..=1.0).contains(&cfg.pct_start)
            || !finite_pos(cfg.max_lr)
            || !finite_pos(cfg.div_factor)
            || !finite_pos(cfg.final_div_factor)
        {
            return Err(OpError::new(
                BUILD,
                "OneCycleLR: total_steps > 0, pct_start in [0, 1], max_lr, div_factor and final_div_factor > 0",
            ));
        }
        if cfg.cycle_momentum && !((0.0..1.0).contains(&cfg.base_momentum) && (0.0..1.0).contains(&cfg.max_momentum)) {
            return Err(OpError::new(BUILD, "OneCycleLR: base_momentum and max_momentum must be in [0, 1)"));
        }
        let n = cfg.total_steps as f64;
        let p = cfg.pct_start;
        let phases = if cfg.three_phase {
            vec![
                Phase { end_step: p * n - 1.0, lr: (Point::Initial, Point::Max), momentum: (true, false) },
                Phase { end_step: 2.0 * p * n - 2.0, lr: (Point::Max, Point::Initial), momentum: (false, true) },
                Phase { end_step: n - 1.0, lr: (Point::Initial, Point::Min), momentum: (true, true) },
            ]
        } else {
            vec![
                Phase { end_step: p * n - 1.0, lr: (Point::Initial, Point::Max), momentum: (true, false) },
                Phase { end_step: n - 1.0, lr: (Point::Max, Point::Min), momentum: (false, true) },
            ]
        };
        if cfg.cycle_momentum {
            if (0..opt.num_groups()).any(|g| opt.momentum(g).is_none()) {
                return Err(OpError::new(
                    BUILD,
                    format!(
                        "OneCycleLR: {} has no momentum or beta1 to cycle (set cycle_momentum = false)",
                        opt.name()
                    ),
                ));
            }
            for g in 0..opt.num_groups() {
                opt.set_momentum(g, cfg.max_momentum);
            }
        }
        let mut s = OneCycle { cfg, phases, last_epoch: -1 };
        s.step(opt, None)?;
        Ok(s)
    }

    fn anneal(&self, start: f64, end: f64, pct: f64) -> f64 {
        if self.cfg.anneal_cos {
            let cos_out = (PI * pct).cos() + 1.0;
            end + (start - end) / 2.0 * cos_out
        } else {
            (end - start) * pct + start
        }
    }
}

impl LrScheduler for OneCycle {
    fn name(&self) -> &'static str {
        "OneCycleLR"
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({"last_epoch": self.last_epoch})
    }

    fn load_state(&mut self, s: &serde_json::Value) -> OpResult<()> {
        self.last_epoch =
            s["last_epoch"].as_i64().ok_or_else(|| OpError::new(LOAD, "scheduler state without last_epoch"))?;
        Ok(())
    }

    fn step(&mut self, opt: &mut dyn Optimizer, _metric: Option<f64>) -> OpResult<()> {
        self.last_epoch += 1;
        let step = self.last_epoch as f64;
        if self.last_epoch > self.cfg.total_steps {
            return Err(OpError::new(
                STEP,
                format!("OneCycleLR: tried to step {} times; total_steps is {}", self.last_epoch, self.cfg.total_steps),
            ));
        }
        let c = &self.cfg;
        let initial = c.max_lr / c.div_factor;
        let lr_at = |p: Point| match p {
            Point::Initial => initial,
            Point::Max => c.max_lr,
            Point::Min => initial / c.final_div_factor,
        };
        let mom_at = |max: bool| if max { c.max_momentum } else { c.base_momentum };
        let mut start = 0.0;
        let last = self.phases.len() - 1;
        for (i, ph) in self.phases.iter().enumerate() {
            if step <= ph.end_step || i == last {
                if ph.end_step - start == 0.0 {
                    return Err(OpError::new(STEP, format!("OneCycleLR: phase {i} has no steps (total_steps {}, pct_start {}); torch divides by zero here too", c.total_steps, c.pct_start)));
                }
                let pct = (step - start) / (ph.end_step - start);
                let lr = self.anneal(lr_at(ph.lr.0), lr_at(ph.lr.1), pct);
                let m = self.anneal(mom_at(ph.momentum.0), mom_at(ph.momentum.1), pct);
                for g in 0..opt.num_groups() {
                    opt.set_lr(g, lr);
                    if c.cycle_momentum {
                        opt.set_momentum(g, m);
                    }
                }
                break;
            }
            start = ph.end_step;
        }
        Ok(())
    }
}
