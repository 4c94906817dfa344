//! The fit loop: the sanity check, then epochs of training each followed by validation
//! (every `check_val_every_n_epoch`), until `max_epochs` or `max_steps`.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::context::Stage;
use crate::engine::optim::Optimizer;
use crate::loops::evaluation;
use crate::loops::fetchers::DataLoader;
use crate::loops::state::LoopState;
use crate::loops::training_epoch;

#[derive(Debug, Default)]
pub struct FitOutcome {
    pub epochs: u64,
    /// The last epoch's progress-bar values (training and validation).
    pub last_epoch: BTreeMap<String, f64>,
}

pub fn run(st: &mut LoopState<'_>, train: &DataLoader, val: Option<&DataLoader>, optimizer: &mut dyn Optimizer) -> Result<FitOutcome> {
    let max_epochs = st.cfg.effective_max_epochs();
    st.ctx.max_epochs = max_epochs;
    if let Some(v) = val {
        let n = st.cfg.num_sanity_val_steps;
        if n != 0 {
            let limit = if n < 0 { None } else { Some(n as usize) };
            evaluation::run(st, v, Stage::SanityCheck, limit)?;
        }
    }
    let mut outcome = FitOutcome::default();
    while !st.should_stop && max_epochs.is_none_or(|m| st.ctx.current_epoch < m) {
        st.epoch_progress.increment_ready();
        st.epoch_progress.increment_started();
        let epoch = training_epoch::run(st, train, optimizer)?;
        st.epoch_progress.increment_processed();
        let step = st.ctx.global_step.saturating_sub(1);
        let mut shown = epoch.prog_bar.clone();
        st.callback_metrics.extend(epoch.all.clone());
        let every = st.cfg.check_val_every_n_epoch.max(1);
        if let Some(v) = val {
            if (st.ctx.current_epoch + 1) % every == 0 {
                let m = evaluation::run(st, v, Stage::Validate, None)?;
                st.log_metrics(&m.logged, step)?;
                shown.extend(m.prog_bar.clone());
                st.callback_metrics.extend(m.all);
            }
        }
        st.log_metrics(&epoch.logged, step)?;
        st.bar.on_train_epoch_end(&shown);
        if let Some(l) = st.logger.as_mut() {
            l.save()?;
        }
        outcome.last_epoch = shown;
        st.epoch_progress.increment_completed();
        st.ctx.current_epoch += 1;
        outcome.epochs += 1;
        if epoch.batches == 0 {
            break;
        }
    }
    Ok(outcome)
}
