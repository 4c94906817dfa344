//! Lightning's `Tuner(trainer).scale_batch_size(model, datamodule)` on lthost's fit loop:
//! `lthost fit --scale-batch-size` searches (callbacks/batch_size_finder.rs), then fits with
//! the size it found, on the same module and DataModule.
//!
//! As Lightning's search: it starts where its BatchSizeFinder does (on_fit_start, after the
//! set-up hooks and `configure_optimizers`), with no callbacks, loggers, checkpointing or
//! progress bar; each trial is the fit loop from the search's starting position (epoch 0,
//! step 0) for `steps_per_trial` optimizer steps over the whole train loader, validating at
//! most `steps_per_trial` batches, while the weights and optimizer go on from trial to trial;
//! the DataLoaders are asked for again after every change of size. After it the loaders are
//! asked for once more, the weights and the module's and DataModule's states are put back
//! (Lightning's checkpoint restore), `teardown` runs, and the fit follows with the size set on
//! every holder of the field. Generators are not put back (Lightning's search does not
//! isolate them): the fit draws on from where the trials left them.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::{put_back, weights};
use crate::callbacks::batch_size_finder::{search, BatchSizeConfig, Trials};
use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::engine::optim::OptimizationProgress;
use crate::hooks::Hook;
use crate::loops::limits::LoopLimits;
use crate::loops::state::LoopState;
use crate::loops::state_dict::Loops;
use crate::loops::{fit, reload};
use crate::module::{AttrValue, DataModule, Module, Split};
use crate::trainer::{configure_optimizers, fit_numbers, optimizer_set, FitReport, Prepared, Trainer};

impl<'c> Trainer<'c> {
    /// Lightning's `Tuner(trainer).scale_batch_size(model, datamodule, mode=…, …)` and then
    /// `trainer.fit(model, datamodule)`: returns the size found (None when skipped under
    /// fast_dev_run, with Lightning's warning) and the fit's report.
    pub fn fit_after_scale_batch_size(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        cfg: &BatchSizeConfig,
    ) -> Result<(Option<i64>, FitReport)> {
        let started = std::time::Instant::now();
        cfg.validate()?;
        if self.builtins.batch_size_finder.is_some() {
            bail!("Trainer is already configured with a `BatchSizeFinder` callback.Please remove it if you want to use the Tuner. (lthost: `[callbacks.batch_size_finder]` with `--scale-batch-size`)");
        }
        if !self.may_search("batch size scaler")? {
            return Ok((None, self.fit(module, data, hparams)?));
        }
        let p = self.prepare(module, data, hparams, Stage::Fit)?;
        let (seed, threads) = (p.seed, p.threads);
        let saved = self.search_settings(cfg.steps_per_trial, cfg.steps_per_trial);
        // Lightning's `__scale_batch_reset_params`: the whole train loader, and these limits
        // over overfit_batches' (the loaders stay sequential).
        self.cfg.limit_train_batches = crate::config::Limit::Fraction(1.0);
        self.cfg.overfit_batches = crate::config::Limit::Batches(0);
        let out = self.batch_size_search(module, data, p, cfg, &saved.0);
        self.restore_settings(saved);
        let Searched { size, ctx, hparams: module_hparams, module_hooks } = out?;
        let mut ctx = crate::context::RunContext {
            params: ctx.params,
            device: ctx.device,
            creation_device: ctx.creation_device,
            data_dir: ctx.data_dir,
            stage: Stage::Fit,
            ..crate::context::RunContext::default()
        };
        // Checkpoints hold the module's `hparams` as they are now (hparams.yaml the initial ones).
        let checkpoint_hparams = module_hparams.hparams.contains_key(&cfg.batch_arg_name).then(|| {
            let mut now = module_hparams.hparams.clone();
            now.insert(cfg.batch_arg_name.clone(), serde_json::json!(size));
            now
        });
        // Lightning's second fit sets the DataModule up again.
        let data_hparams = data.setup(&mut ctx, Stage::Fit, hparams)?;
        let p =
            Prepared { ctx, hparams: module_hparams, data_hparams, seed, threads, module_hooks, checkpoint_hparams };
        let fit = self.fit_prepared(module, data, p, started)?;
        Ok((Some(size), fit))
    }

    /// The search on a configured module (`p`), with the search's settings in `self.cfg`.
    /// `user`: the Trainer's own settings (the search's are in `self.cfg`).
    fn batch_size_search(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        mut p: Prepared,
        cfg: &BatchSizeConfig,
        user: &crate::config::TrainerConfig,
    ) -> Result<Searched> {
        let data_name = data.name().to_string();
        // The train loader as the field holds it now (Lightning's first `loop.setup_data()`,
        // before `init_val` is set).
        let mut train = DataLoader::from_plugin(data, &mut p.ctx, Split::Train, 0, self.cfg.prefetch())?
            .ok_or_else(|| anyhow!("plugin `{data_name}` provides no train dataset: the batch size finder trains"))?;
        let overfit = !user.overfit_batches.is_zero();
        if overfit {
            train.set_shuffle(false);
        }
        // The set-up hooks and `configure_optimizers` see the user's loop numbers (Lightning's
        // search starts at on_fit_start, after them).
        let numbers = LoopLimits::for_fit(user, train.num_batches(), &[])?;
        p.ctx.max_epochs = numbers.max_epochs;
        p.ctx.fit_numbers = fit_numbers(user, &numbers);
        let limits = LoopLimits::for_fit(&self.cfg, train.num_batches(), &[])?;
        self.callbacks = Vec::new();
        let mut st = self.state(module, Some(data), p, limits, None)?;
        st.fitting = true;
        st.searching = true;
        // BatchSizeFinder.setup: after the DataModule's setup, before the module's.
        if !holds(&mut st, &cfg.batch_arg_name)? {
            bail!(
                "Field {} not found in `model`, `datamodule`, nor their `hparams` attributes. (lthost: `[scale_batch_size] batch_arg_name`)",
                cfg.batch_arg_name
            );
        }
        st.hook(Hook::Setup, None)?;
        st.hook(Hook::ConfigureModel, None)?;
        let (opt, name) = configure_optimizers(&mut st)?;
        let set = optimizer_set(&st, &name, &opt.optimizers, &opt.schedulers, opt.automatic)?;
        let in_plugin = set.plugin_schedulers();
        st.ctx.optim = Some(set);
        for i in in_plugin {
            crate::loops::optimization::run_plugin_scheduler(
                st.module,
                &mut st.ctx,
                i,
                crate::module::SchedulerCall::Start,
            )?;
        }
        // Lightning's checkpoint before the search: weights, the module's and DataModule's own
        // state, and the loops.
        let snapshot = weights(&st.ctx)?;
        let module_state = st.module.save_state(&mut st.ctx)?;
        let data_state = match st.data.as_deref_mut() {
            Some(d) => d.save_state(&mut st.ctx)?,
            None => None,
        };
        let start = Start {
            loops: st.loops.clone(),
            progress: st.ctx.optim.as_ref().map(|o| o.progress).unwrap_or_default(),
            epoch: st.ctx.current_epoch,
            step: st.ctx.global_step,
        };
        let mut trials =
            FitTrials { st: &mut st, train, used: false, val: None, start, name: cfg.batch_arg_name.clone(), overfit };
        let size = search(&mut trials, cfg)?;
        println!("Finished batch size finder, will continue with full run using batch size {size}");
        // `__scale_batch_restore_params`: the loaders asked for again, at the size found; the
        // fit loop's `setup_data` makes the train loader's iterator, which the fit after it
        // never uses (its draws are taken all the same).
        trials.reset_dataloaders()?;
        trials.train.discard_iterator()?;
        drop(trials);
        // The checkpoint restore: the DataModule's state, the module's `on_load_checkpoint`,
        // then the weights.
        if let (Some(state), Some(d)) = (&data_state, st.data.as_deref_mut()) {
            d.load_state(&mut st.ctx, state)?;
        }
        if let Some(state) = &module_state {
            st.module.load_state(&mut st.ctx, state)?;
        }
        put_back(&st.ctx, &snapshot)?;
        st.hook(Hook::Teardown, None)?;
        Ok(Searched {
            size,
            ctx: std::mem::take(&mut st.ctx),
            hparams: std::mem::take(&mut st.hparams),
            module_hooks: std::mem::take(&mut st.module_hooks),
        })
    }
}

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

/// What the search leaves for the fit: the size found and the configured module's context.
struct Searched {
    size: i64,
    ctx: crate::context::RunContext,
    hparams: crate::hparams::SavedHparams,
    module_hooks: std::collections::HashSet<Hook>,
}

/// Lightning's `lightning_hasattr`: the module or the DataModule holds the field.
fn holds(st: &mut LoopState<'_>, name: &str) -> Result<bool> {
    if st.module.has_attr(&mut st.ctx, name)? {
        return Ok(true);
    }
    match st.data.as_deref_mut() {
        Some(d) => d.has_attr(&mut st.ctx, name),
        None => Ok(false),
    }
}

/// Where every trial starts (Lightning's dumped `loop_state_dict`, with the optimizer
/// progress and epoch progress `_reset_progress` zeroes).
struct Start {
    loops: Loops,
    progress: OptimizationProgress,
    epoch: u64,
    step: u64,
}

/// The trials on the fit loop.
struct FitTrials<'s, 'a> {
    st: &'s mut LoopState<'a>,
    train: DataLoader,
    /// A trial ran on `train`. Lightning's `setup_data` makes a new loader's iterator at
    /// once (its base seed drawn) and the next trial's first epoch uses it; a loader no trial
    /// used is dropped with its draws made ([`DataLoader::discard_iterator`]).
    used: bool,
    /// Asked for when the first trial starts (Lightning's fit loop `on_run_start`).
    val: Option<Vec<DataLoader>>,
    start: Start,
    name: String,
    /// The user's `overfit_batches` is set: the loaders keep a sequential sampler (Lightning's
    /// `_resolve_overfit_batches`), while the search's limits are its own.
    overfit: bool,
}

impl FitTrials<'_, '_> {
    /// The loop numbers for the loaders held now.
    fn refresh_limits(&mut self) -> Result<()> {
        let st = &mut *self.st;
        let lens: Vec<usize> = self.val.iter().flatten().map(DataLoader::num_batches).collect();
        st.limits = LoopLimits::for_fit(&st.cfg, self.train.num_batches(), &lens)?;
        st.ctx.fit_numbers = fit_numbers(&st.cfg, &st.limits);
        st.ctx.max_epochs = st.limits.max_epochs;
        Ok(())
    }

    fn ask_val(&mut self) -> Result<()> {
        let st = &mut *self.st;
        let Some(d) = st.data.as_deref_mut() else { return Ok(()) };
        let mut val = DataLoader::all_from_plugin(d, &mut st.ctx, Split::Val, st.cfg.prefetch())?;
        if self.overfit {
            val.iter_mut().for_each(|v| v.set_shuffle(false));
        }
        st.eval_log_steps.clear();
        self.val = Some(val);
        self.refresh_limits()
    }
}

impl Trials for FitTrials<'_, '_> {
    fn batch_size(&mut self) -> Result<i64> {
        let st = &mut *self.st;
        // Lightning reads the last holder: the DataModule's before the module's.
        let held = match st.data.as_deref_mut() {
            Some(d) => d.get_attr(&mut st.ctx, &self.name)?,
            None => None,
        };
        let held = match held {
            Some(v) => Some(v),
            None => st.module.get_attr(&mut st.ctx, &self.name)?,
        };
        match held {
            Some(AttrValue::Int(n)) => Ok(n),
            Some(AttrValue::Float(f)) => bail!("`{}` holds {f}, not an integer batch size", self.name),
            None => bail!("`{}` holds no number: the batch size finder reads the batch size there", self.name),
        }
    }

    fn set_batch_size(&mut self, size: i64) -> Result<()> {
        let st = &mut *self.st;
        st.module.set_attr(&mut st.ctx, &self.name, AttrValue::Int(size))?;
        if let Some(d) = st.data.as_deref_mut() {
            d.set_attr(&mut st.ctx, &self.name, AttrValue::Int(size))?;
        }
        Ok(())
    }

    fn dataset_len(&mut self) -> Result<Option<u64>> {
        Ok(self.train.dataset_len())
    }

    fn run(&mut self) -> Result<bool> {
        if self.val.is_none() {
            self.ask_val()?;
        }
        self.used = true;
        let st = &mut *self.st;
        // What a failed step logged does not reach the next trial.
        st.ctx.logs.clear();
        st.loops = self.start.loops.clone();
        if let Some(o) = st.ctx.optim.as_mut() {
            o.progress = self.start.progress;
        }
        st.ctx.current_epoch = self.start.epoch;
        st.ctx.global_step = self.start.step;
        st.epoch_order = None;
        st.ctx.batch.clear();
        (st.in_batch, st.step_pending, st.val_due_pending) = (false, false, false);
        let val = self.val.get_or_insert_with(Vec::new);
        reload::start(st, &mut self.train, val)?;
        let out = fit::run(st, &mut self.train, val);
        let signal = st.interrupter.interrupted().or(match crate::plugin::interrupt::signalled() {
            0 => None,
            s => Some(s as i32),
        });
        if let Some(sig) = signal {
            bail!("signal {sig} stopped the batch size search; nothing was trained or saved");
        }
        match out {
            Ok(_) => Ok(true),
            Err(e) if out_of_memory(&e) => {
                // Only a plugin that is still usable can go on (a step's error result); one
                // that stopped (an out-of-memory trap) ends the search with its error.
                if let Err(gone) = st.module.has_attr(&mut st.ctx, &self.name) {
                    return Err(e.context(format!("the batch size finder cannot go on: {gone}")));
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn reset_dataloaders(&mut self) -> Result<()> {
        if !self.used {
            self.train.discard_iterator()?;
        }
        let st = &mut *self.st;
        let Some(d) = st.data.as_deref_mut() else { return Ok(()) };
        let name = d.name().to_string();
        let mut train = DataLoader::from_plugin(d, &mut st.ctx, Split::Train, 0, st.cfg.prefetch())?
            .ok_or_else(|| anyhow!("plugin `{name}` provides no train dataset when asked again"))?;
        if self.overfit {
            train.set_shuffle(false);
        }
        self.train = train;
        self.used = false;
        self.ask_val()
    }

    fn info(&mut self, line: String) {
        println!("{line}");
    }
}

/// Lightning's `is_oom_error`, and a refusal of the plugin's tensor budget: the trial ran
/// out of memory.
fn out_of_memory(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    (text.contains("CUDA") && text.contains("out of memory"))
        || text.contains("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED.")
        || text.contains("DefaultCPUAllocator: can't allocate memory")
        || text.contains("(plugin.tensor_memory_limit_mb)")
}
