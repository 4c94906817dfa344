//! Lightning's `BatchSizeFinder` callback in a fit (`[callbacks.batch_size_finder]`): the
//! batch-size search of `callbacks/batch_size_finder.rs` at on_fit_start, on the fit's own
//! objects, then that fit goes on at the size found.

use anyhow::{bail, Result};

use super::fit_trials::{holds, FitTrials, Start};
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
    let position = crate::loops::checkpointing::position(st, 0, false);
    let mut saved = crate::loops::run_state::dump(st, position, false, true)?;
    // The dump shares the live tensors; the snapshot must not move with the trials. It is
    // kept on the CPU, as Lightning's is on disk (a device copy would take the memory the
    // trials measure).
    tch::no_grad(|| -> Result<()> {
        for t in saved.tensors.values_mut() {
            *t = super::cpu_copy(t)?;
        }
        Ok(())
    })?;
    let loops_before = st.loops.clone();
    // Lightning's Timer is not among the search's callbacks: the search's time is not the fit's.
    let timer = st.timer.clone();
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
    let fit_cfg = std::mem::replace(&mut st.cfg, during);
    let callbacks = std::mem::take(&mut st.callbacks);
    let logger = st.logger.take();
    let checkpoint = st.checkpoint.take();
    let early_stopping = st.early_stopping.take();
    let bar = std::mem::replace(&mut st.bar, crate::callbacks::ProgressBar::new(false));
    let (limits, fit_numbers_before) = (st.limits.clone(), st.ctx.fit_numbers.clone());
    st.searching = true;
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
    st.searching = false;
    st.cfg = fit_cfg;
    st.callbacks = callbacks;
    st.logger = logger;
    st.bar = bar;
    st.limits = limits;
    st.ctx.fit_numbers = fit_numbers_before;
    st.timer = timer;
    if found.is_err() {
        // The weights as they were before the search (Lightning restores them in a `finally`).
        crate::connectors::checkpoint::restore_model(&mut st.ctx, &saved, "the batch size finder's snapshot")?;
    }
    let (size, train, val) = found?;
    st.interrupter.withdraw_request();
    st.val_has_run = false;
    // Lightning's `_reset_dataloaders` made the train loader's iterator there (its base seed
    // drawn now, before anything after the search, such as a learning-rate search, isolates
    // the generators); the fit's first epoch uses it.
    train.make_iterator_now()?;
    // Checkpoints hold the size in the module's hyper-parameters (Lightning's `hparams`).
    if st.hparams.hparams.contains_key(&cfg.batch_arg_name) {
        st.checkpoint_hparams.insert(cfg.batch_arg_name.clone(), serde_json::json!(size));
    }
    // Lightning's checkpoint restore, without the generators (its restore leaves them).
    let rng = crate::engine::torch_ext::RngState::now(st.ctx.device)?;
    crate::connectors::checkpoint::restore_model(&mut st.ctx, &saved, "the batch size finder's snapshot")?;
    crate::loops::run_state::restore_training(st, &saved, "the batch size finder's snapshot")?;
    rng.restore()?;
    // Lightning's `_run_stage` starts with `zero_grad(set_to_none=True)`.
    if let Some(o) = st.ctx.optim.as_mut() {
        o.clear_grads();
    }
    // The loops as they were (the snapshot's position marks no restart: the fit starts).
    st.loops = loops_before;
    st.checkpoint = checkpoint;
    st.early_stopping = early_stopping;
    st.epoch_order = None;
    st.resume_order = None;
    // The fit's loop numbers follow the new loaders.
    let lens: Vec<usize> = val.iter().map(DataLoader::num_batches).collect();
    st.limits = LoopLimits::for_fit(&st.cfg, train.num_batches(), &lens)?;
    st.ctx.fit_numbers = fit_numbers(&st.cfg, &st.limits);
    st.eval_log_steps.clear();
    Ok((train, val))
}
