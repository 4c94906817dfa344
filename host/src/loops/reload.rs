//! Lightning's `reload_dataloaders_every_n_epochs`: the DataModule is asked for the train
//! DataLoader again at the start of every n-th epoch since the last time (before the epoch's
//! hooks, so a loader may depend on `trainer.current_epoch`), and for the validation
//! DataLoader at the first validation of such an epoch. The loop numbers follow the new
//! loaders' lengths.

use anyhow::{anyhow, Result};

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
    /// At the start of fit in `epoch`, the loaders just made. `val_counted`: the validation
    /// loader counts as made in `epoch` (Lightning does not count the one a sanity check
    /// asked for when `epoch` itself does not validate).
    pub fn new(every: u64, epoch: u64, val_counted: bool) -> Reloads {
        Reloads { every, train_at: Some(epoch), val_at: val_counted.then_some(epoch) }
    }

    fn due(&self, at: Option<u64>, epoch: u64) -> bool {
        self.every > 0 && at.is_none_or(|a| epoch.saturating_sub(a) >= self.every)
    }
}

/// At an epoch's start: a new train DataLoader when one is due. Lightning makes an iterator
/// of it there and drops it ([`DataLoader::discard_iterator`]); an empty one is not counted
/// as a reload (asked for again next epoch).
pub fn train(st: &mut LoopState<'_>, train: &mut DataLoader) -> Result<()> {
    let epoch = st.ctx.current_epoch;
    if !st.reloads.due(st.reloads.train_at, epoch) || st.cfg.limit_train_batches.is_zero() {
        return Ok(());
    }
    let Some(data) = st.data.as_deref_mut() else { return Ok(()) };
    let name = data.name().to_string();
    let mut fresh = DataLoader::from_plugin(data, &mut st.ctx, Split::Train, st.cfg.prefetch())?.ok_or_else(|| {
        anyhow!("plugin `{name}` provides no train dataset when asked again (reload_dataloaders_every_n_epochs)")
    })?;
    let limits = LoopLimits::for_fit(st.cfg, fresh.num_batches(), None)?;
    if !limits.shuffle_train {
        fresh.set_shuffle(false);
    }
    fresh.discard_iterator()?;
    st.limits.train_batches = limits.train_batches;
    st.limits.val_check_batch = limits.val_check_batch;
    st.limits.val_at_pass_end = limits.val_at_pass_end;
    st.ctx.fit_numbers.num_training_batches = crate::module::sized(limits.train_batches);
    if limits.train_batches > 0 {
        st.reloads.train_at = Some(epoch);
    }
    *train = fresh;
    Ok(())
}

/// Before a validation run inside fit: a new validation DataLoader when one is due.
pub fn val(st: &mut LoopState<'_>, val: &mut Option<DataLoader>) -> Result<()> {
    let epoch = st.ctx.current_epoch;
    if !st.reloads.due(st.reloads.val_at, epoch) || st.cfg.limit_val_batches.is_zero() {
        return Ok(());
    }
    let Some(data) = st.data.as_deref_mut() else { return Ok(()) };
    let fresh = DataLoader::from_plugin(data, &mut st.ctx, Split::Val, st.cfg.prefetch())?;
    let batches = match &fresh {
        Some(v) => LoopLimits::for_stage(st.cfg, crate::context::Stage::Validate, v.num_batches())?,
        None => 0,
    };
    st.limits.val_batches = batches;
    st.ctx.fit_numbers.num_val_batches = crate::module::sized(batches);
    st.reloads.val_at = Some(epoch);
    *val = fresh;
    Ok(())
}
