//! ReduceLROnPlateau: cut the rate by `factor` when the monitored metric stops improving.

use super::LrScheduler;
use super::{BUILD, LOAD, STEP};
use crate::engine::optim::Optimizer;
use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, PartialEq)]
pub struct PlateauConfig {
    /// Minimise (true) or maximise the metric.
    pub mode_min: bool,
    pub factor: f64,
    pub patience: i64,
    pub threshold: f64,
    /// Relative (true) or absolute threshold.
    pub threshold_rel: bool,
    pub cooldown: i64,
    pub min_lr: f64,
    pub eps: f64,
}

pub struct Plateau {
    cfg: PlateauConfig,
    best: f64,
    num_bad_epochs: i64,
    cooldown_counter: i64,
    pub last_epoch: i64,
}

impl Plateau {
    pub fn new(cfg: PlateauConfig, _opt: &mut dyn Optimizer) -> OpResult<Self> {
        if cfg.factor >= 1.0 {
            return Err(OpError::new(BUILD, "ReduceLROnPlateau: factor must be < 1.0"));
        }
        let best = if cfg.mode_min { f64::INFINITY } else { f64::NEG_INFINITY };
        Ok(Plateau { cfg, best, num_bad_epochs: 0, cooldown_counter: 0, last_epoch: 0 })
    }

    fn is_better(&self, a: f64) -> bool {
        let (c, best) = (&self.cfg, self.best);
        match (c.mode_min, c.threshold_rel) {
            (true, true) => a < best * (1.0 - c.threshold),
            (true, false) => a < best - c.threshold,
            (false, true) => a > best * (c.threshold + 1.0),
            (false, false) => a > best + c.threshold,
        }
    }
}

impl LrScheduler for Plateau {
    fn name(&self) -> &'static str {
        "ReduceLROnPlateau"
    }

    fn is_plateau(&self) -> bool {
        true
    }

    fn state(&self) -> serde_json::Value {
        let best = if self.best.is_finite() { serde_json::json!(self.best) } else { serde_json::Value::Null };
        serde_json::json!({"best": best, "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter, "last_epoch": self.last_epoch})
    }

    fn load_state(&mut self, s: &serde_json::Value) -> OpResult<()> {
        self.best = s["best"].as_f64().unwrap_or(if self.cfg.mode_min { f64::INFINITY } else { f64::NEG_INFINITY });
        self.num_bad_epochs =
            s["num_bad_epochs"].as_i64().ok_or_else(|| OpError::new(LOAD, "plateau state without num_bad_epochs"))?;
        self.cooldown_counter = s["cooldown_counter"]
            .as_i64()
            .ok_or_else(|| OpError::new(LOAD, "plateau state without cooldown_counter"))?;
        self.last_epoch = s["last_epoch"].as_i64().unwrap_or(0);
        Ok(())
    }

    fn step(&mut self, opt: &mut dyn Optimizer, metric: Option<f64>) -> OpResult<()> {
        let Some(current) = metric else {
            return Err(OpError::new(STEP, "ReduceLROnPlateau needs a monitored metric"));
        };
        self.last_epoch += 1;
        if self.is_better(current) {
            self.best = current;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.cfg.patience {
            for g in 0..opt.num_groups() {
                let old = opt.lr(g);
                let new = (old * self.cfg.factor).max(self.cfg.min_lr);
                if old - new > self.cfg.eps {
                    opt.set_lr(g, new);
                }
            }
            self.cooldown_counter = self.cfg.cooldown;
            self.num_bad_epochs = 0;
        }
        Ok(())
    }
}
