//! The fit loop: epochs of training (each validating when due) until `max_epochs`,
//! `max_steps`, or a stop request once `min_epochs`/`min_steps` are met.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::data::fetchers::DataLoader;
use crate::hooks::Hook;
use crate::loops::checkpointing::{self, Trigger};
use crate::loops::optimization::{self, Interval};
use crate::loops::reload;
use crate::loops::state::LoopState;
use crate::loops::state_dict::Stateful;
use crate::loops::training_epoch::{self, TrainingEpochLoop};
use crate::progress::Progress;

/// Lightning's `_FitLoop` state: its epochs' progress and the training epoch loop under it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitLoop {
    pub epoch_progress: Progress,
    pub epoch_loop: TrainingEpochLoop,
}

impl Stateful for FitLoop {
    fn trackers(&self) -> Vec<(&'static str, &Progress)> {
        vec![("epoch_progress", &self.epoch_progress)]
    }
    fn trackers_mut(&mut self) -> Vec<(&'static str, &mut Progress)> {
        vec![("epoch_progress", &mut self.epoch_progress)]
    }
    fn children(&self) -> Vec<(&'static str, &dyn Stateful)> {
        vec![("epoch_loop", &self.epoch_loop)]
    }
    fn children_mut(&mut self) -> Vec<(&'static str, &mut dyn Stateful)> {
        vec![("epoch_loop", &mut self.epoch_loop)]
    }
}

#[derive(Debug, Default)]
pub struct FitOutcome {
    pub epochs: u64,
    /// Wall time of each epoch run (training, its validation, checkpoints), in seconds.
    pub epoch_seconds: Vec<f64>,
    /// The last epoch's progress-bar values (training and validation).
    pub last_epoch: BTreeMap<String, f64>,
}

fn done(st: &LoopState<'_>) -> bool {
    if st.limits.train_batches == 0 || st.max_steps_reached() {
        return true;
    }
    if st.limits.max_epochs.is_some_and(|m| st.loops.fit_loop.epoch_progress.current.processed >= m) {
        return true;
    }
    st.interrupter.should_stop() && st.can_stop_early()
}

pub fn run(st: &mut LoopState<'_>, train: &mut DataLoader, val: &mut Vec<DataLoader>) -> Result<FitOutcome> {
    st.ctx.max_epochs = st.limits.max_epochs;
    let mut outcome = FitOutcome::default();
    // Lightning skips the fit loop (and ModelCheckpoint's on_train_end) when there is nothing
    // to train: max_epochs/max_steps reached already (a finished run resumed), no batches.
    let nothing_to_train = done(st);
    st.last_val_time = std::time::Instant::now();
    st.hook(Hook::OnTrainStart, None)?;
    if let Some(mc) = st.checkpoint.as_mut() {
        mc.on_train_start();
    }
    while !done(st) {
        // A DataLoader due again is asked for before the epoch's hooks (Lightning's
        // `FitLoop.on_advance_start`).
        reload::train(st, train)?;
        // A run restored inside an epoch continues that epoch: it is counted as started
        // already (Lightning skips these increments when restarting mid-epoch).
        let epochs = &mut st.loops.fit_loop.epoch_progress;
        if epochs.current.started == epochs.current.completed {
            epochs.increment_ready();
            epochs.increment_started();
        }
        let epoch_started = std::time::Instant::now();
        let epoch = training_epoch::run(st, train, val)?;
        if st.interrupter.interrupted().is_some() {
            break;
        }
        st.loops.fit_loop.epoch_progress.increment_processed();
        let step = st.loops.fit_loop.epoch_loop.batches_that_stepped.saturating_sub(1);
        st.log_metrics(&epoch.logged, step)?;
        st.early_stopping_check(true)?;
        let next = st.ctx.current_epoch + 1;
        if epoch.completed_here && st.ctx.optim.as_ref().is_some_and(|o| o.automatic) {
            optimization::step_schedulers(st.module, &mut st.ctx, Interval::Epoch, next, true, None)?;
        }
        st.bar.on_train_epoch_end(&epoch.prog_bar);
        if let Some(l) = st.logger.as_mut() {
            l.save()?;
        }
        outcome.last_epoch = epoch.prog_bar;
        st.loops.fit_loop.epoch_progress.increment_completed();
        st.ctx.current_epoch += 1;
        outcome.epochs += 1;
        let finished = st.ctx.current_epoch - 1;
        let mut pos = checkpointing::position(st, 0, false);
        pos.restart_mut().at_epoch_end = true;
        checkpointing::save(st, Trigger::TrainEpochEnd, finished, pos)?;
        outcome.epoch_seconds.push(epoch_started.elapsed().as_secs_f64());
        // DDP: a stop one rank's epoch end asked for (EarlyStopping on its own metrics) is
        // every rank's, before any starts another epoch. A signal waits for the next batch.
        if st.ddp.is_some() {
            st.agree_on_stop()?;
        }
    }
    if st.interrupter.interrupted().is_none() && !nothing_to_train {
        // ModelCheckpoint's on_train_end: `last` if save_last and nothing was saved.
        let pos = checkpointing::position(st, 0, false);
        let epoch = st.ctx.current_epoch.saturating_sub(1);
        checkpointing::save(st, Trigger::TrainEnd, epoch, pos)?;
    }
    // A signal ends the run as Lightning's SIGTERMException / KeyboardInterrupt does: with
    // on_exception (called when it was saved), not the end hooks (SIGUSR1, lthost's save and
    // exit for a requeue, too: Lightning's job is ended by SLURM after its save).
    if st.interrupter.interrupted().is_none() {
        st.hook(Hook::OnTrainEnd, None)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
