//! Lightning's `BatchSizeFinder` callback in a fit (`[callbacks.batch_size_finder]`): the
//! batch-size search of `callbacks/batch_size_finder.rs` at on_fit_start, on the fit's own
//! objects, then that fit goes on at the size found.

use anyhow::{bail, Result};

use super::fit_trials::{holds, FitTrials, Start};
use super::set_aside::SetAside;
use crate::callbacks::batch_size_finder::{search, BatchSizeConfig, Trials};
use crate::data::fetchers::DataLoader;
use crate::loops::limits::LoopLimits;
use crate::loops::state::LoopState;
use crate::trainer::fit_numbers;

/// Lightning's `BatchSizeFinder` callback in a fit (`[callbacks.batch_size_finder]`): the
/// search at on_fit_start, before the other callbacks' and the module's (Lightning puts the
/// tuner's callbacks first), on the fit's own objects. `train` is the fit's train loader
/// (made at the field's own size). Around the search the callbacks, loggers, checkpointing,
/// the progress bar and the fit's limits are set aside, and Lightning's checkpoint before it
/// is put back after it (weights, optimizers and schedulers, the module's and DataModule's
/// states, the Timer; not the generators); the fit then goes on with the loaders at the size
/// found. Returns them.
pub(crate) fn search_in_fit(
    st: &mut LoopState<'_>,
    train: DataLoader,
    cfg: &BatchSizeConfig,
) -> Result<(DataLoader, Vec<DataLoader>)> {
    cfg.validate()?;
    if !holds(st, &cfg.batch_arg_name)? {
        bail!(
            "Field {} not found in `model`, `datamodule`, nor their `hparams` attributes. (lthost: `[callbacks.batch_size_finder] batch_arg_name`)",
            cfg.batch_arg_name
        );
    }
    let start = Start {
        loops: st.loops.clone(),
        progress: st.ctx.optim.as_ref().map(|o| o.progress).unwrap_or_default(),
        epoch: st.ctx.current_epoch,
        step: st.ctx.global_step,
    };
    // Lightning's `__scale_batch_dump_params` / `__scale_batch_reset_params`.
    let overfit = !st.cfg.overfit_batches.is_zero();
    let mut during = st.cfg.clone();
    during.overfit_batches = crate::config::Limit::Batches(0);
    during.max_epochs = Some(st.cfg.effective_max_epochs().map_or(-1, |m| i64::try_from(m).unwrap_or(-1)));
    during.max_time = None;
    during.max_steps = i64::try_from(cfg.steps_per_trial).unwrap_or(i64::MAX);
    during.limit_train_batches = crate::config::Limit::Fraction(1.0);
    during.limit_val_batches = crate::config::Limit::Batches(cfg.steps_per_trial);
    during.enable_progress_bar = false;
    let mut aside = SetAside::start(st, "batch size finder", during, Vec::new())?;
    let found = (|| -> Result<(i64, DataLoader, Vec<DataLoader>)> {
        let mut trials =
            FitTrials { st: &mut *st, train, used: false, val: None, start, name: cfg.batch_arg_name.clone(), overfit };
        let size = search(&mut trials, cfg)?;
        println!("Finished batch size finder, will continue with full run using batch size {size}");
        // The loaders asked for again, at the size found: the fit goes on with them (its
        // first epoch uses the iterator their set-up made).
        trials.reset_dataloaders()?;
        let FitTrials { train, val, .. } = trials;
        Ok((size, train, val.unwrap_or_default()))
    })();
    aside.end_search(st, found.is_err())?;
    let (size, train, val) = found?;
    // Lightning's `_reset_dataloaders` made the train loader's iterator there (its base seed
    // drawn now, before anything after the search, such as a learning-rate search, isolates
    // the generators); the fit's first epoch uses it.
    train.make_iterator_now()?;
    // Checkpoints hold the size in the module's hyper-parameters (Lightning's `hparams`).
    if st.hparams.hparams.contains_key(&cfg.batch_arg_name) {
        st.checkpoint_hparams.insert(cfg.batch_arg_name.clone(), serde_json::json!(size));
    }
    aside.put_back(st)?;
    // The fit's loop numbers follow the new loaders.
    let lens: Vec<usize> = val.iter().map(DataLoader::num_batches).collect();
    st.limits = LoopLimits::for_fit(&st.cfg, train.num_batches(), &lens)?;
    st.ctx.fit_numbers = fit_numbers(&st.cfg, &st.limits);
    st.eval_log_steps.clear();
    Ok((train, val))
}
