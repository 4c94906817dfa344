//! Lightning's `LearningRateFinder` callback in a fit (`[callbacks.learning_rate_finder]`):
//! the learning-rate range test at on_fit_start, first of the callbacks, on the fit's own
//! module, optimizer and loaders, then that fit goes on.
//!
//! As Lightning's callback: the search runs under `isolate_rng`; the field is looked up first
//! (`update_attr`); the run is snapshotted (Lightning's checkpoint), the callbacks, loggers,
//! checkpointing and the plugin's schedulers are set aside for the range schedule, validation
//! is limited to `num_training` batches and the fit loop runs `num_training` optimizer steps
//! from where it stands; after it the snapshot is put back (weights, optimizers, schedulers,
//! the module's and DataModule's states, the Timer), the train loader is set up again with its
//! iterator made inside the isolation (Lightning's `fit_loop.setup_data()` in the search's
//! `finally`), the generators are put back, and the suggestion goes into the field and every
//! optimizer's parameter groups (not into a scheduler's base learning rates, as Lightning's).

use anyhow::{anyhow, bail, Result};

use super::lr_attr;
use crate::callbacks::lr_finder::{suggestion, LrFindConfig, LrFinderCallback};
use crate::data::fetchers::DataLoader;
use crate::engine::optim::{Interval, SchedulerSpec};
use crate::engine::torch_ext::RngState;
use crate::loops::limits::LoopLimits;
use crate::loops::state::LoopState;
use crate::loops::{fit, reload};
use crate::module::{AttrValue, Optimization, Split};
use crate::trainer::{fit_numbers, optimizer_set};

/// The search in the fit `st` (its optimizers configured from `opt`, named `name`), on its
/// loaders; returns the loaders the fit goes on with.
pub(crate) fn search_in_fit(
    st: &mut LoopState<'_>,
    train: DataLoader,
    val: Vec<DataLoader>,
    opt: &Optimization,
    name: &str,
    cfg: &LrFindConfig,
) -> Result<(DataLoader, Vec<DataLoader>)> {
    cfg.validate()?;
    let device = st.ctx.device;
    let isolated = RngState::now(device)?;
    let attr = if cfg.update_attr { Some(lr_attr(st, &cfg.attr_name)?) } else { None };
    if opt.optimizers.len() != 1 {
        bail!("plugin `{name}`: `model.configure_optimizers()` returned {}, but learning rate finder only works with single optimizer", opt.optimizers.len());
    }
    if !opt.automatic {
        bail!("plugin `{name}` uses manual optimization: the learning rate finder steps the optimizer itself, so it needs automatic optimization");
    }
    // Lightning's checkpoint before the search, kept on the CPU.
    let position = crate::loops::checkpointing::position(st, 0, false);
    let mut saved = crate::loops::run_state::dump(st, position, false, true)?;
    tch::no_grad(|| -> Result<()> {
        for t in saved.tensors.values_mut() {
            *t = super::cpu_copy(t)?;
        }
        Ok(())
    })?;
    let loops_before = st.loops.clone();
    // Lightning's Timer is not among the search's callbacks: the search's time is not the fit's.
    let timer = st.timer.clone();
    let start_steps = st.ctx.global_step;
    // `__lr_finder_dump_params` / `__lr_finder_reset_params`.
    let mut during = st.cfg.clone();
    during.max_time = None;
    during.max_steps = i64::try_from(cfg.num_training.saturating_add(start_steps)).unwrap_or(i64::MAX);
    during.limit_val_batches = crate::config::Limit::Batches(cfg.num_training);
    during.enable_progress_bar = false;
    let fit_cfg = std::mem::replace(&mut st.cfg, during);
    let finder = LrFinderCallback::new(cfg, st.cfg.accumulate_grad_batches);
    let results = finder.results.clone();
    let callbacks = std::mem::replace(&mut st.callbacks, vec![Box::new(finder)]);
    let logger = st.logger.take();
    let checkpoint = st.checkpoint.take();
    let early_stopping = st.early_stopping.take();
    let bar = std::mem::replace(&mut st.bar, crate::callbacks::ProgressBar::new(false));
    let (limits, numbers) = (st.limits.clone(), st.ctx.fit_numbers.clone());
    let spec = SchedulerSpec {
        kind: cfg.schedule(),
        optimizer: 0,
        interval: Interval::Step,
        frequency: 1,
        monitor: None,
        strict: true,
    };
    let search_set = optimizer_set(st, name, &opt.optimizers, &[spec], true);
    let fit_set = st.ctx.optim.take();
    st.searching = true;
    let (mut train, mut val) = (train, val);
    let ran = (|| -> Result<()> {
        st.ctx.optim = Some(search_set?);
        let lens: Vec<usize> = val.iter().map(DataLoader::num_batches).collect();
        st.limits = LoopLimits::for_fit(&st.cfg, train.num_batches(), &lens)?;
        st.ctx.fit_numbers = fit_numbers(&st.cfg, &st.limits);
        reload::start(st, &mut train, &mut val)?;
        fit::run(st, &mut train, &mut val)?;
        Ok(())
    })();
    let steps = st.ctx.global_step.saturating_sub(start_steps);
    st.searching = false;
    st.cfg = fit_cfg;
    st.callbacks = callbacks;
    st.logger = logger;
    st.bar = bar;
    st.limits = limits;
    st.ctx.fit_numbers = numbers;
    st.ctx.optim = fit_set;
    st.timer = timer;
    let signal = st.interrupter.interrupted().or(match crate::plugin::interrupt::signalled() {
        0 => None,
        s => Some(s as i32),
    });
    if signal.is_some() || ran.is_err() {
        // The weights as they were before the search (Lightning restores them in a `finally`).
        crate::connectors::checkpoint::restore_model(&mut st.ctx, &saved, "the learning rate finder's snapshot")?;
    }
    if let Some(sig) = signal {
        bail!("signal {sig} stopped the learning-rate search; nothing was trained or saved");
    }
    ran?;
    // Lightning's restore sets `should_stop = False`: a search that stopped early (the loss
    // diverged) does not stop the fit.
    st.interrupter.withdraw_request();
    let results = results.borrow().clone();
    let found = suggestion(&results, 10, 1).map_err(|e| anyhow!("lr_find suggestion: {e}"))?;
    let report = super::LrFindReport { results, suggestion: found, steps, seed: 0 };
    report.print(cfg);
    // The snapshot put back; not the generators (Lightning's restore leaves them: the loaders
    // below are set up from where the search left them, and the isolation ends after).
    let searched = RngState::now(device)?;
    crate::connectors::checkpoint::restore_model(&mut st.ctx, &saved, "the learning rate finder's snapshot")?;
    crate::loops::run_state::restore_training(st, &saved, "the learning rate finder's snapshot")?;
    searched.restore()?;
    st.loops = loops_before;
    st.val_has_run = false;
    st.checkpoint = checkpoint;
    st.early_stopping = early_stopping;
    (st.epoch_order, st.resume_order) = (None, None);
    if let Some(o) = st.ctx.optim.as_mut() {
        o.clear_grads();
    }
    // `fit_loop.setup_data()` in the search's `finally`: a new train loader, its iterator made
    // now (its base seed from the generators as the search left them); the validation loader
    // is asked for again too (Lightning asks at the sanity check, under its own isolation).
    let Some(d) = st.data.as_deref_mut() else { bail!("internal: a fit without its DataModule") };
    let data_name = d.name().to_string();
    let mut train = DataLoader::from_plugin(d, &mut st.ctx, Split::Train, 0, st.cfg.prefetch())?
        .ok_or_else(|| anyhow!("plugin `{data_name}` provides no train dataset when asked again"))?;
    let mut val = DataLoader::all_from_plugin(d, &mut st.ctx, Split::Val, st.cfg.prefetch())?;
    if !st.cfg.overfit_batches.is_zero() {
        train.set_shuffle(false);
        val.iter_mut().for_each(|v| v.set_shuffle(false));
    }
    train.make_iterator_now()?;
    isolated.restore()?;
    if let (Some(attr), Some((_, lr))) = (&attr, found) {
        st.module.set_attr(&mut st.ctx, attr, AttrValue::Float(lr))?;
        if let Some(d) = st.data.as_deref_mut() {
            d.set_attr(&mut st.ctx, attr, AttrValue::Float(lr))?;
        }
        if let Some(o) = st.ctx.optim.as_mut() {
            for i in 0..o.optimizers.len() {
                for g in 0..o.optimizers[i].num_groups() {
                    o.set_lr(i, g, lr).map_err(|e| anyhow!("setting the suggested lr: {}", e.detail))?;
                }
            }
        }
        // Schedulers the plugin runs read the rates from its side: their state handed back
        // again (as a restore does) has the plugin take the host's rates.
        let in_plugin = st.ctx.optim.as_ref().map(|o| o.plugin_schedulers()).unwrap_or_default();
        for i in in_plugin {
            if let Some(serde_json::Value::String(state)) = saved.meta.schedulers.get(i) {
                st.module.plugin_scheduler(&mut st.ctx, i, crate::module::SchedulerCall::Load(state))?;
            }
        }
        println!("Learning rate set to {}", crate::callbacks::py_format::repr_float(lr));
        if st.hparams.hparams.contains_key(attr) {
            st.checkpoint_hparams.insert(attr.clone(), serde_json::json!(lr));
        }
    }
    let lens: Vec<usize> = val.iter().map(DataLoader::num_batches).collect();
    st.limits = LoopLimits::for_fit(&st.cfg, train.num_batches(), &lens)?;
    st.ctx.fit_numbers = fit_numbers(&st.cfg, &st.limits);
    st.eval_log_steps.clear();
    Ok((train, val))
}
