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
use super::set_aside::SetAside;
use crate::callbacks::lr_finder::{suggestion, LrFindConfig, LrFinderCallback};
use crate::data::fetchers::DataLoader;
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
    super::searchable(opt, name)?;
    let start_steps = st.ctx.global_step;
    // `__lr_finder_dump_params` / `__lr_finder_reset_params`.
    let mut during = st.cfg.clone();
    during.max_time = None;
    during.max_steps = i64::try_from(cfg.num_training.saturating_add(start_steps)).unwrap_or(i64::MAX);
    during.limit_val_batches = crate::config::Limit::Batches(cfg.num_training);
    during.enable_progress_bar = false;
    let finder = LrFinderCallback::new(cfg, st.cfg.accumulate_grad_batches);
    let results = finder.results.clone();
    let mut aside = SetAside::start(st, "learning rate finder", during, vec![Box::new(finder)])?;
    let spec = cfg.search_spec();
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
    let total_batch_idx = super::total_batch_idx(st);
    st.ctx.optim = fit_set;
    let signal = st.interrupter.interrupted().or(match crate::plugin::interrupt::signalled() {
        0 => None,
        s => Some(s as i32),
    });
    aside.end_search(st, signal.is_some() || ran.is_err())?;
    if let Some(sig) = signal {
        bail!("signal {sig} stopped the learning-rate search; nothing was trained or saved");
    }
    ran?;
    let results = results.borrow().clone();
    let found = suggestion(&results, 10, 1).map_err(|e| anyhow!("lr_find suggestion: {e}"))?;
    let report = super::LrFindReport { results, suggestion: found, steps, total_batch_idx, seed: 0 };
    report.print(cfg);
    // The snapshot put back; not the generators (Lightning's restore leaves them: the loaders
    // below are set up from where the search left them, and the isolation ends after). A
    // search the diverging loss stopped does not stop the fit (`should_stop = False`).
    aside.put_back(st)?;
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
            if let Some(state) = aside.scheduler_state(i) {
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
