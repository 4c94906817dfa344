//! Lightning's LearningRateMonitor: logs each optimizer's learning rate (and momentum) to
//! the loggers, as `lr-<Optimizer>` (`lr-Adam`, `lr-SGD/pg2`, `lr-Adam-1` for a second
//! Adam), at the step (`on_train_batch_start` when logs are due) and/or the epoch
//! (`on_train_epoch_start`). With `logging_interval` unset, an optimizer with a scheduler is
//! logged at its scheduler's interval, one without at both.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{Callback, CallbackAction, HookInfo};
use crate::engine::optim::{Interval, OptimizerSet};
use crate::hooks::Hook;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrMonitorConfig {
    /// "step", "epoch" or unset (each scheduler's own interval).
    pub logging_interval: Option<String>,
    /// Also log momentum (`betas[0]` for Adam and AdamW), as `<name>-momentum`.
    pub log_momentum: bool,
}

pub struct LearningRateMonitor {
    cfg: LrMonitorConfig,
}

#[derive(Clone, Copy, PartialEq)]
enum When {
    Step,
    Epoch,
    Any,
}

impl LearningRateMonitor {
    pub fn new(cfg: LrMonitorConfig) -> Result<Self> {
        if let Some(i) = &cfg.logging_interval {
            if !matches!(i.as_str(), "step" | "epoch") {
                bail!(
                    "callbacks.lr_monitor.logging_interval = {i:?}: expected \"step\" or \"epoch\" (or leave it unset)"
                );
            }
        }
        Ok(LearningRateMonitor { cfg })
    }

    /// Lightning's names: optimizers with a scheduler first, then the others; a repeated
    /// optimizer class gets `-1`, `-2`...; several parameter groups get `/pg1`, `/pg2`...
    fn names(set: &OptimizerSet) -> Vec<(usize, Vec<String>)> {
        let mut order: Vec<usize> = Vec::new();
        for s in &set.schedulers {
            if !order.contains(&s.spec.optimizer) {
                order.push(s.spec.optimizer);
            }
        }
        order.extend((0..set.optimizers.len()).filter(|i| !set.schedulers.iter().any(|s| s.spec.optimizer == *i)));
        let mut seen: Vec<(&str, usize)> = Vec::new();
        order
            .into_iter()
            .map(|i| {
                let opt = &set.optimizers[i];
                let class = opt.name();
                let count = match seen.iter_mut().find(|(c, _)| *c == class) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        seen.push((class, 1));
                        1
                    }
                };
                let mut name = format!("lr-{class}");
                if count > 1 {
                    name.push_str(&format!("-{}", count - 1));
                }
                let groups = opt.num_groups();
                let names = (0..groups)
                    .map(|g| if groups > 1 { format!("{name}/pg{}", g + 1) } else { name.clone() })
                    .collect();
                (i, names)
            })
            .collect()
    }

    fn stats(&self, set: &OptimizerSet, when: When) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (i, names) in Self::names(set) {
            let scheduled: Vec<Interval> =
                set.schedulers.iter().filter(|s| s.spec.optimizer == i).map(|s| s.spec.interval).collect();
            let due = scheduled.is_empty()
                || when == When::Any
                || scheduled.iter().any(|iv| {
                    (*iv == Interval::Step && when == When::Step) || (*iv == Interval::Epoch && when == When::Epoch)
                });
            if !due {
                continue;
            }
            let opt = &set.optimizers[i];
            for (g, name) in names.into_iter().enumerate() {
                out.push((name.clone(), opt.lr(g)));
                if self.cfg.log_momentum {
                    out.push((format!("{name}-momentum"), opt.momentum(g).unwrap_or(0.0)));
                }
            }
        }
        out
    }
}

/// Every optimizer's learning rate per group, under LearningRateMonitor's names.
pub fn current_lrs(set: &OptimizerSet) -> Vec<(String, f64)> {
    LearningRateMonitor::names(set)
        .into_iter()
        .flat_map(|(i, names)| names.into_iter().enumerate().map(move |(g, n)| (n, set.optimizers[i].lr(g))))
        .collect()
}

impl Callback for LearningRateMonitor {
    fn name(&self) -> &str {
        "LearningRateMonitor"
    }

    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> Result<CallbackAction> {
        let interval = self.cfg.logging_interval.as_deref();
        let when = match hook {
            Hook::OnTrainStart if !info.has_logger => {
                bail!("Cannot use `LearningRateMonitor` callback with a Trainer that has no logger")
            }
            Hook::OnTrainBatchStart if info.should_update_logs && interval != Some("epoch") => {
                if interval.is_none() {
                    When::Step
                } else {
                    When::Any
                }
            }
            Hook::OnTrainEpochStart if interval != Some("step") => {
                if interval.is_none() {
                    When::Epoch
                } else {
                    When::Any
                }
            }
            _ => return Ok(CallbackAction::default()),
        };
        let Some(set) = info.optim else { return Ok(CallbackAction::default()) };
        Ok(CallbackAction {
            metrics: self.stats(set, when),
            metrics_are_callback_metrics: true,
            ..CallbackAction::default()
        })
    }
}
