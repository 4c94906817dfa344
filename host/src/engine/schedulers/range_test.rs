//! The learning-rate range test's schedule (Lightning's `_ExponentialLR` / `_LinearLR`
//! in `tuner/lr_finder.py`): every group starts at `min_lr`; after step k (k >= 1) the rate
//! is `min * (max / min) ^ ((k + 1) / n)`, or `min + (k + 1) / n * (max - min)` linearly.

use super::LrScheduler;
use super::{BUILD, LOAD};
use crate::engine::optim::Optimizer;
use crate::error::{OpError, OpResult};

#[derive(Debug, Clone, PartialEq)]
pub struct RangeTestConfig {
    pub exponential: bool,
    pub min_lr: f64,
    pub max_lr: f64,
    pub num_iter: u64,
}

pub struct RangeTest {
    cfg: RangeTestConfig,
    last_epoch: i64,
}

impl RangeTest {
    /// Sets every group to `min_lr` and performs the initial step, as torch schedulers do.
    pub fn new(cfg: RangeTestConfig, opt: &mut dyn Optimizer) -> OpResult<Self> {
        let bounded = cfg.min_lr.is_finite() && cfg.max_lr.is_finite();
        if !bounded || (cfg.exponential && !(cfg.min_lr > 0.0 && cfg.max_lr >= 0.0)) || cfg.num_iter == 0 {
            return Err(OpError::new(
                BUILD,
                "range test: need finite bounds (above 0 when exponential) and num_iter > 0",
            ));
        }
        let mut s = RangeTest { cfg, last_epoch: -1 };
        s.advance(opt);
        Ok(s)
    }

    fn advance(&mut self, opt: &mut dyn Optimizer) {
        self.last_epoch += 1;
        let c = &self.cfg;
        let r = (self.last_epoch + 1) as f64 / c.num_iter as f64;
        let lr = if self.last_epoch == 0 {
            c.min_lr
        } else if c.exponential {
            c.min_lr * (c.max_lr / c.min_lr).powf(r)
        } else {
            c.min_lr + r * (c.max_lr - c.min_lr)
        };
        for g in 0..opt.num_groups() {
            opt.set_lr(g, lr);
        }
    }
}

impl LrScheduler for RangeTest {
    fn name(&self) -> &'static str {
        "LRFinder"
    }
    fn step(&mut self, opt: &mut dyn Optimizer, _metric: Option<f64>) -> OpResult<()> {
        self.advance(opt);
        Ok(())
    }
    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "last_epoch": self.last_epoch })
    }
    fn load_state(&mut self, state: &serde_json::Value) -> OpResult<()> {
        self.last_epoch =
            state["last_epoch"].as_i64().ok_or_else(|| OpError::new(LOAD, "range test state without last_epoch"))?;
        Ok(())
    }
}
