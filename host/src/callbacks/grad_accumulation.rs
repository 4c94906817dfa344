//! Lightning's GradientAccumulationScheduler: `accumulate_grad_batches` by epoch, e.g.
//! `{0 = 8, 4 = 4, 8 = 1}` accumulates 8 batches in epochs 0-3, 4 in epochs 4-7, then none.
//! Set at `on_train_epoch_start`; automatic optimization only, and the Trainer's own
//! `accumulate_grad_batches` must stay 1 (Lightning refuses both at once).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::{Callback, CallbackAction, HookInfo};
use crate::hooks::Hook;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccumulationConfig {
    /// Epoch (from 0) → accumulation factor from that epoch on.
    pub scheduling: BTreeMap<String, u64>,
}

pub struct GradientAccumulationScheduler {
    /// (first epoch, factor), ascending; epoch 0 is always present.
    scheduling: Vec<(u64, u64)>,
}

impl GradientAccumulationScheduler {
    pub fn new(cfg: &AccumulationConfig) -> Result<Self> {
        if cfg.scheduling.is_empty() {
            bail!("callbacks.gradient_accumulation_scheduler.scheduling is empty: give epoch = factor pairs, e.g. {{ 0 = 4, 5 = 1 }}");
        }
        let mut scheduling = Vec::new();
        for (k, &v) in &cfg.scheduling {
            let Ok(epoch) = k.trim().parse::<u64>() else {
                bail!("callbacks.gradient_accumulation_scheduler: epoch {k:?} must be an integer >= 0");
            };
            if v == 0 {
                bail!("callbacks.gradient_accumulation_scheduler: the factor for epoch {epoch} must be at least 1");
            }
            scheduling.push((epoch, v));
        }
        scheduling.sort();
        if scheduling[0].0 != 0 {
            scheduling.insert(0, (0, 1));
        }
        Ok(GradientAccumulationScheduler { scheduling })
    }

    pub fn factor(&self, epoch: u64) -> u64 {
        self.scheduling.iter().rev().find(|(e, _)| epoch >= *e).map(|(_, f)| *f).unwrap_or(1)
    }
}

impl Callback for GradientAccumulationScheduler {
    fn name(&self) -> &str {
        "GradientAccumulationScheduler"
    }

    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> Result<CallbackAction> {
        match hook {
            Hook::OnTrainStart => {
                if info.optim.is_some_and(|o| !o.automatic) {
                    bail!("GradientAccumulationScheduler needs automatic optimization (Lightning refuses manual optimization too)");
                }
                Ok(CallbackAction::default())
            }
            Hook::OnTrainEpochStart => Ok(CallbackAction {
                accumulate_grad_batches: Some(self.factor(info.current_epoch)),
                ..CallbackAction::default()
            }),
            _ => Ok(CallbackAction::default()),
        }
    }

    /// The resumed epoch's factor, which its skipped `on_train_epoch_start` would have set
    /// (Lightning's, working in that hook only, does not set it on a resume inside an epoch).
    fn on_train_epoch_resumed(&mut self, info: &HookInfo<'_>) -> Result<CallbackAction> {
        Ok(CallbackAction {
            accumulate_grad_batches: Some(self.factor(info.current_epoch)),
            ..CallbackAction::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(pairs: &[(&str, u64)]) -> Result<GradientAccumulationScheduler> {
        GradientAccumulationScheduler::new(&AccumulationConfig {
            scheduling: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
    }

    #[test]
    fn factors_by_epoch_like_lightning() {
        let s = sched(&[("4", 4), ("8", 1), ("1", 2)]).unwrap();
        let got: Vec<u64> = (0..10).map(|e| s.factor(e)).collect();
        assert_eq!(got, vec![1, 2, 2, 2, 4, 4, 4, 4, 1, 1]);
        assert!(sched(&[]).is_err());
        assert!(sched(&[("0", 0)]).is_err());
        assert!(sched(&[("-1", 2)]).is_err());
    }
}
