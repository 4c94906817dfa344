//! Lightning's `reload_dataloaders_every_n_epochs`: the DataModule is asked for the train
//! DataLoader again at the start of every n-th epoch since the last time (before the epoch's
//! hooks, so a loader may depend on `trainer.current_epoch`), and for the validation
//! DataLoader at the first validation of such an epoch. The loop numbers follow the new
//! loaders' lengths.

use anyhow::{anyhow, Result};

use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::loops::limits::LoopLimits;
use crate::loops::state::LoopState;
use crate::module::Split;

/// When each DataLoader was last asked for (Lightning's `_last_train_dl_reload_epoch` and
/// `_last_val_dl_reload_epoch`; None: never, minus infinity there).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reloads {
    every: u64,
    train_at: Option<u64>,
    val_at: Option<u64>,
}

impl Reloads {
    fn due(&self, at: Option<u64>, epoch: u64) -> bool {
        self.every > 0 && at.is_none_or(|a| epoch.saturating_sub(a) >= self.every)
    }

    /// Whether the validation loader is asked for again at `epoch`'s next validation.
    pub fn val_due(&self, epoch: u64) -> bool {
        self.due(self.val_at, epoch)
    }
}

/// At the start of fit, once a checkpoint is restored: when the loaders count as asked for.
/// Lightning asks for the train loader as the fit loop starts and for the validation loader
/// there only when that epoch validates (a sanity check's counts the same way). A resumed
/// run is asked again, as Lightning asks after the restore (lthost made its loaders before
/// restoring): the train loader seeing the epoch the checkpoint counts as current (the
/// finished one, for a save at an epoch's end: Lightning's `setup_data` runs before its
/// loops complete that epoch), the validation loader the epoch that resumes. Those are the
/// resumed epoch's loaders (no iterator dropped).
pub fn start(st: &mut LoopState<'_>, train: &mut DataLoader, val: &mut Vec<DataLoader>) -> Result<()> {
    let every = st.cfg.reload_dataloaders_every_n_epochs.max(0) as u64;
    let epoch = st.ctx.current_epoch;
    let val_now = st.limits.validates_in(epoch);
    let seen = match st.loops.fit_loop.epoch_loop.restart.as_ref() {
        Some(r) if every > 0 && r.at_epoch_end => epoch.saturating_sub(1),
        Some(_) if every > 0 => epoch,
        _ => {
            st.reloads = Reloads { every, train_at: Some(epoch), val_at: val_now.then_some(epoch) };
            return Ok(());
        }
    };
    if !st.cfg.limit_train_batches.is_zero() {
        st.ctx.current_epoch = seen;
        let asked = ask_train(st, train);
        st.ctx.current_epoch = epoch;
        asked?;
    }
    if val_now && !st.cfg.limit_val_batches.is_zero() {
        ask_val(st, val)?;
    }
    st.reloads = Reloads { every, train_at: Some(seen), val_at: val_now.then_some(epoch) };
    Ok(())
}

/// The DataModule's train loader, asked for now; the loop numbers follow its length.
/// Returns its batches.
fn ask_train(st: &mut LoopState<'_>, train: &mut DataLoader) -> Result<usize> {
    let Some(data) = st.data.as_deref_mut() else { return Ok(st.limits.train_batches) };
    let name = data.name().to_string();
    let mut fresh =
        DataLoader::from_plugin(data, &mut st.ctx, Split::Train, 0, st.cfg.prefetch())?.ok_or_else(|| {
            anyhow!("plugin `{name}` provides no train dataset when asked again (reload_dataloaders_every_n_epochs)")
        })?;
    // Lightning checks an int val_check_interval against the new length whenever validation
    // is on (`limit_val_batches > 0`), whatever the validation loader's length.
    let val_on: &[usize] = if st.cfg.limit_val_batches.is_zero() { &[] } else { &[1 << 40] };
    if !st.limits.shuffle_train {
        fresh.set_shuffle(false);
    }
    let limits = LoopLimits::for_fit(&st.cfg, fresh.num_batches(), val_on)?;
    st.limits.train_batches = limits.train_batches;
    st.limits.val_check_batch = limits.val_check_batch;
    st.limits.val_at_pass_end = limits.val_at_pass_end;
    st.ctx.fit_numbers.num_training_batches = crate::module::sized(limits.train_batches);
    if st.limits.val_check_seconds.is_some() {
        // A time-based interval counts from here again (Lightning's `setup_data`).
        st.last_val_time = std::time::Instant::now();
    }
    *train = fresh;
    Ok(limits.train_batches)
}

/// The DataModule's validation loaders, asked for now; the loop numbers follow their lengths.
fn ask_val(st: &mut LoopState<'_>, val: &mut Vec<DataLoader>) -> Result<()> {
    let Some(data) = st.data.as_deref_mut() else { return Ok(()) };
    let mut fresh = DataLoader::all_from_plugin(data, &mut st.ctx, Split::Val, st.cfg.prefetch())?;
    let mut batches = Vec::with_capacity(fresh.len());
    for v in &mut fresh {
        if !st.limits.shuffle_train {
            v.set_shuffle(false);
        }
        batches.push(LoopLimits::for_stage(&st.cfg, Stage::Validate, v.num_batches())?);
    }
    let cap = st.limits.sanity_cap;
    st.limits.sanity_steps = batches.iter().map(|&b| b.min(cap)).collect();
    st.ctx.fit_numbers.num_val_batches = batches.iter().map(|&b| crate::module::sized(b)).collect();
    st.limits.val_batches = batches;
    // Lightning's `_seen_batches_per_dataloader` starts over with new loaders.
    st.eval_log_steps.clear();
    *val = fresh;
    Ok(())
}

/// At an epoch's start: a new train DataLoader when one is due. Lightning makes an iterator
/// of it there and drops it ([`DataLoader::discard_iterator`]); an empty one is not counted
/// as a reload (asked for again next epoch).
pub fn train(st: &mut LoopState<'_>, train: &mut DataLoader) -> Result<()> {
    let epoch = st.ctx.current_epoch;
    if !st.reloads.due(st.reloads.train_at, epoch) || st.cfg.limit_train_batches.is_zero() {
        return Ok(());
    }
    let batches = ask_train(st, train)?;
    train.discard_iterator()?;
    if batches > 0 {
        st.reloads.train_at = Some(epoch);
    }
    Ok(())
}

/// Before a validation run inside fit: a new validation DataLoader when one is due.
pub fn val(st: &mut LoopState<'_>, val: &mut Vec<DataLoader>) -> Result<()> {
    let epoch = st.ctx.current_epoch;
    if !st.reloads.due(st.reloads.val_at, epoch) || st.cfg.limit_val_batches.is_zero() {
        return Ok(());
    }
    ask_val(st, val)?;
    st.reloads.val_at = Some(epoch);
    Ok(())
}
