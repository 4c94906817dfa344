//! Lightning's Tuner: `lthost lr-find` runs the learning-rate range test on the plugin's
//! model and data with its single optimizer: the plugin's schedulers are replaced by the
//! range schedule, other callbacks, loggers, checkpointing, the sanity check and the
//! progress bar are off, validation is limited to `num_training` batches, and training
//! stops after `num_training` optimizer steps or when the loss diverges. Nothing the run
//! would keep is written; the results are the learning rates, smoothed losses and the
//! suggestion (see `callbacks/lr_finder.rs`). `lthost fit --lr-find` searches the same way on
//! the configured module, puts its state back, sets the suggestion where the module or
//! DataModule holds the field, and fits ([`Trainer::fit_after_lr_find`]).

use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use tch::Tensor;

use crate::callbacks::lr_finder::{suggestion, LrFindConfig, LrFindResults, LrFinderCallback};
use crate::config::Limit;
use crate::context::{RunContext, Stage};
use crate::data::fetchers::DataLoader;
use crate::engine::torch_ext::RngState;
use crate::hooks::Hook;
use crate::hparams::SavedHparams;
use crate::loops::fit;
use crate::module::{AttrValue, DataModule, Module};
use crate::trainer::{configure_optimizers, optimizer_set, FitReport, Prepared, Trainer};

#[derive(Debug)]
pub struct LrFindReport {
    pub results: LrFindResults,
    /// The suggestion's index in the results and its learning rate.
    pub suggestion: Option<(usize, f64)>,
    /// Optimizer steps taken (fewer than `num_training` when the loss diverged).
    pub steps: u64,
    /// The last batch's index across epochs (Lightning's `_total_batch_idx`: with gradient
    /// accumulation, more batches than steps).
    pub total_batch_idx: i64,
    /// The run's seed: a fit with it starts from the weights the search started from.
    pub seed: u64,
}

impl LrFindReport {
    /// What the search found, in Lightning's words where it has them.
    pub fn print(&self, cfg: &LrFindConfig) {
        if self.steps < cfg.num_training {
            println!("LR finder stopped early after {} steps due to diverging loss.", self.steps);
        }
        match self.suggestion {
            Some((i, lr)) => println!(
                "Learning rate finder: {} steps; suggested lr = {} (steepest descent of the loss, step {i})",
                self.steps,
                crate::callbacks::py_format::repr_float(lr)
            ),
            None => println!(
                "Learning rate finder: {} steps. Failed to compute suggestion for learning rate because there are not enough points. Increase the loop iteration limits or the size of your dataset/dataloader.",
                self.steps
            ),
        }
    }
}

pub(crate) mod batch_size_in_fit;
pub(crate) mod eval_trials;
mod fit_trials;
pub(crate) mod lr_find_in_fit;
mod scale_batch_size;
mod set_aside;

/// The Trainer settings a search replaces, put back after it.
pub(crate) type Settings<'c> = (
    crate::config::TrainerConfig,
    crate::callbacks::BuiltinCallbacks,
    Option<crate::callbacks::early_stopping::EarlyStoppingConfig>,
    Vec<Box<dyn crate::callbacks::Callback + 'c>>,
);

/// What a search leaves for the fit that follows it on the same objects.
struct Searched {
    ctx: RunContext,
    hparams: SavedHparams,
    module_hooks: crate::module::ModuleHooks,
    /// The field the suggestion goes into (Lightning's `attr_name`), when looked up.
    attr: Option<String>,
    /// The generators as the search found them (Lightning runs it under `isolate_rng`).
    rng: RngState,
    /// The module's stored weights and buffers as the search found them (Lightning's
    /// checkpoint at on_fit_start, after the set-up hooks).
    weights: Vec<(String, Tensor)>,
    /// What that checkpoint also asks: the module's `on_save_checkpoint` and the DataModule's
    /// `state_dict`, handed back after the search (`on_load_checkpoint`, `load_state_dict`).
    module_state: Option<Vec<u8>>,
    data_state: Option<Vec<u8>>,
}

impl<'c> Trainer<'c> {
    /// Lightning's `Tuner(trainer).lr_find(model, datamodule)`; None when it is skipped
    /// (fast_dev_run, with Lightning's warning).
    pub fn lr_find(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        cfg: &LrFindConfig,
    ) -> Result<Option<LrFindReport>> {
        cfg.validate()?;
        if self.builtins.learning_rate_finder.is_some() {
            bail!("Trainer is already configured with a `LearningRateFinder` callback.Please remove it if you want to use the Tuner. (lthost: `[callbacks.learning_rate_finder]` with `lthost lr-find`)");
        }
        if !self.may_search("learning rate finder")? {
            return Ok(None);
        }
        let p = self.prepare(module, data, hparams, Stage::Fit)?;
        let saved = self.search_settings(cfg.num_training, cfg.num_training);
        let out = self.range_test(module, data, p, cfg, None, &saved.0);
        self.restore_settings(saved);
        out.map(|(report, _)| Some(report))
    }

    /// Lightning's `Tuner(trainer).lr_find(model, datamodule, update_attr=True, attr_name=…)`
    /// and then `trainer.fit(model, datamodule)`, on the same objects: the search starts from
    /// the configured module; its weights and buffers are put back after it (Lightning's
    /// checkpoint restore), the suggestion is set on the module and DataModule wherever they
    /// hold the field (`lightning_setattr`: an attribute or a hyper-parameter), and the fit
    /// follows without re-seeding, from the generators as they were before the search
    /// (Lightning's LearningRateFinder searches under `isolate_rng`), asking the DataModule's
    /// `setup` again as Lightning's second fit does.
    /// A module holding none of the fields is refused before the search, with Lightning's
    /// message. Under fast_dev_run the search is skipped, as Lightning skips it.
    pub fn fit_after_lr_find(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        cfg: &LrFindConfig,
    ) -> Result<(Option<LrFindReport>, FitReport)> {
        let started = Instant::now();
        cfg.validate()?;
        if !cfg.update_attr {
            bail!("fit --lr-find applies the suggestion (Lightning's Tuner with update_attr=True); `lthost lr-find` searches without applying it");
        }
        if self.builtins.learning_rate_finder.is_some() {
            bail!("Trainer is already configured with a `LearningRateFinder` callback.Please remove it if you want to use the Tuner. (lthost: `[callbacks.learning_rate_finder]` with `--lr-find`)");
        }
        if !self.may_search("learning rate finder")? {
            return Ok((None, self.fit(module, data, hparams)?));
        }
        let p = self.prepare(module, data, hparams, Stage::Fit)?;
        let (seed, threads) = (p.seed, p.threads);
        let saved = self.search_settings(cfg.num_training, cfg.num_training);
        let out = self.range_test(module, data, p, cfg, Some(&cfg.attr_name), &saved.0);
        self.restore_settings(saved);
        let (report, searched) = out?;
        report.print(cfg);
        let Searched { ctx: used, hparams: module_hparams, module_hooks, attr, rng, weights, module_state, data_state } =
            searched;
        // Lightning's LearningRateFinder searches under `isolate_rng`: the fit draws from the
        // generators as they were before the search.
        rng.restore()?;
        let mut ctx = RunContext {
            params: used.params,
            device: used.device,
            creation_device: used.creation_device,
            data_dir: used.data_dir,
            stage: Stage::Fit,
            ..RunContext::default()
        };
        // Lightning's restore order: the DataModule's state, the module's
        // `on_load_checkpoint`, then the weights.
        if let Some(state) = &data_state {
            data.load_state(&mut ctx, state)?;
        }
        if let Some(state) = &module_state {
            module.load_state(&mut ctx, state)?;
        }
        put_back(&ctx, &weights)?;
        let mut checkpoint_hparams = None;
        if let (Some(attr), Some((_, lr))) = (&attr, report.suggestion) {
            module.set_attr(&mut ctx, attr, AttrValue::Float(lr))?;
            data.set_attr(&mut ctx, attr, AttrValue::Float(lr))?;
            println!("Learning rate set to {}", crate::callbacks::py_format::repr_float(lr));
            checkpoint_hparams = module_hparams.with_set(attr, serde_json::json!(lr));
        }
        // Lightning's second fit sets the DataModule up again, from the generators now.
        let data_hparams = data.setup(&mut ctx, Stage::Fit, hparams)?;
        let p = Prepared {
            ctx,
            hparams: module_hparams,
            data_hparams,
            seed,
            threads,
            module_hooks,
            checkpoint_hparams,
            run_hparams: hparams.clone(),
            ddp: None,
        };
        let fit = self.fit_prepared(module, data, p, started)?;
        Ok((Some(report), fit))
    }

    /// The checks before any search; false: skipped (fast_dev_run, with Lightning's warning,
    /// which names the `finder`).
    fn may_search(&self, finder: &str) -> Result<bool> {
        if self.cfg.fast_dev_run.batches().is_some() {
            eprintln!("warning: Skipping {finder} since `fast_dev_run` is enabled.");
            return Ok(false);
        }
        if self.ckpt_path.is_some() {
            bail!("the {finder} searches from the plugin's own initial weights: --ckpt-path is not taken (Lightning's Tuner has no ckpt_path)");
        }
        Ok(true)
    }

    /// What every search sets: Lightning keeps the max_epochs its Trainer resolved (1000 when
    /// no limit was given) and swaps out every callback, the Timer's max_time with them, and
    /// the loggers; a search of `max_steps` optimizer steps validates at most
    /// `limit_val_batches` batches. Returns what it replaced.
    pub(crate) fn search_settings(&mut self, max_steps: u64, limit_val_batches: u64) -> Settings<'c> {
        let saved = (
            self.cfg.clone(),
            std::mem::take(&mut self.builtins),
            self.early_stopping.take(),
            std::mem::take(&mut self.callbacks),
        );
        self.cfg.max_epochs = Some(self.cfg.effective_max_epochs().map_or(-1, |m| i64::try_from(m).unwrap_or(-1)));
        self.cfg.max_time = None;
        self.cfg.max_steps = i64::try_from(max_steps).unwrap_or(i64::MAX);
        self.cfg.limit_val_batches = Limit::Batches(limit_val_batches);
        self.cfg.num_sanity_val_steps = 0;
        self.cfg.logger = false;
        self.cfg.enable_checkpointing = false;
        self.cfg.enable_progress_bar = false;
        saved
    }

    pub(crate) fn restore_settings(&mut self, saved: Settings<'c>) {
        (self.cfg, self.builtins, self.early_stopping, self.callbacks) = saved;
    }

    /// The search on a configured module (`p`). `attr_name`: look up the field the
    /// suggestion goes into (Lightning's `_determine_lr_attr_name`, after the set-up hooks
    /// and before any step).
    fn range_test(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        mut p: Prepared,
        cfg: &LrFindConfig,
        attr_name: Option<&str>,
        user: &crate::config::TrainerConfig,
    ) -> Result<(LrFindReport, Searched)> {
        let seed = p.seed;
        let device = p.ctx.device;
        let before_data = RngState::now(device)?;
        let (train, val, limits) = self.fit_data(data, &mut p.ctx, "lr_find trains, so it needs one", false)?;
        let after_data = RngState::now(device)?;
        // The set-up hooks and `configure_optimizers` see the user's loop numbers (Lightning's
        // search starts at on_fit_start, after them).
        let lens: Vec<usize> = val.iter().map(DataLoader::num_batches).collect();
        let numbers = crate::loops::limits::LoopLimits::for_fit(user, train.num_batches(), &lens)?;
        p.ctx.max_epochs = numbers.max_epochs;
        p.ctx.fit_numbers = crate::trainer::fit_numbers(user, &numbers);
        let finder = LrFinderCallback::new(cfg, self.cfg.accumulate_grad_batches);
        let results = finder.results.clone();
        self.callbacks = vec![Box::new(finder)];
        let mut st = self.state(module, Some(data), p, limits, None)?;
        st.fitting = true;
        st.searching = true;
        st.hook(Hook::Setup, None)?;
        st.configure_model()?;
        let (opt, name) = configure_optimizers(&mut st)?;
        // From here the search's own numbers (Lightning's `max_steps` during it).
        st.ctx.max_epochs = st.limits.max_epochs;
        st.ctx.fit_numbers = crate::trainer::fit_numbers(&st.cfg, &st.limits);
        let attr = match attr_name {
            Some(given) => Some(lr_attr(&mut st, given)?),
            None => None,
        };
        // Where Lightning's `isolate_rng` starts (on_fit_start, after these hooks and before
        // the search asks for its DataLoaders, which lthost asked for first): the state after
        // the hooks when asking for the DataLoaders drew nothing, else the state before them
        // (then what the set-up hooks drew is not kept).
        let rng = if before_data.cpu == after_data.cpu { RngState::now(device)? } else { before_data };
        let weights = weights(&st.ctx)?;
        let (module_state, data_state) = if attr_name.is_some() {
            let m = st.module.save_state(&mut st.ctx)?;
            let d = match st.data.as_deref_mut() {
                Some(d) => d.save_state(&mut st.ctx)?,
                None => None,
            };
            (m, d)
        } else {
            (None, None)
        };
        searchable(&opt, &name)?;
        st.ctx.optim = Some(optimizer_set(&st, &name, &opt.optimizers, &[cfg.search_spec()], true)?);
        let (mut train, mut val) = (train, val);
        crate::loops::reload::start(&mut st, &mut train, &mut val)?;
        fit::run(&mut st, &mut train, &mut val)?;
        if let Some(sig) = st.interrupter.interrupted() {
            bail!("signal {sig} stopped the learning-rate search; nothing was trained or saved");
        }
        st.hook(Hook::Teardown, None)?;
        let steps = st.ctx.global_step;
        let total_batch_idx = total_batch_idx(&st);
        let searched = Searched {
            ctx: std::mem::take(&mut st.ctx),
            hparams: std::mem::take(&mut st.hparams),
            module_hooks: std::mem::take(&mut st.module_hooks),
            attr,
            rng,
            weights,
            module_state,
            data_state,
        };
        drop(st);
        let results = results.borrow().clone();
        let suggestion = suggestion(&results, 10, 1).map_err(|e| anyhow!("lr_find suggestion: {e}"))?;
        Ok((LrFindReport { results, suggestion, steps, total_batch_idx, seed }, searched))
    }
}

/// Lightning's `fit_loop.total_batch_idx`: the batches the fit loop has drawn, less one.
pub(crate) fn total_batch_idx(st: &crate::loops::state::LoopState<'_>) -> i64 {
    let ready = st.loops.fit_loop.epoch_loop.batch_progress.total.ready;
    i64::try_from(ready).unwrap_or(i64::MAX) - 1
}

/// Lightning's `_determine_lr_attr_name`: the given name, else `lr`, else `learning_rate`,
/// on the module or the DataModule (an attribute or a hyper-parameter), with its messages.
fn lr_attr(st: &mut crate::loops::state::LoopState<'_>, given: &str) -> Result<String> {
    let names: Vec<&str> = if given.is_empty() { vec!["lr", "learning_rate"] } else { vec![given] };
    for name in names {
        let mut found = st.module.has_attr(&mut st.ctx, name)?;
        if !found {
            if let Some(d) = st.data.as_deref_mut() {
                found = d.has_attr(&mut st.ctx, name)?;
            }
        }
        if found {
            return Ok(name.to_string());
        }
    }
    if given.is_empty() {
        bail!("When using the learning rate finder, either `model` or `model.hparams` should have one of these fields: ('lr', 'learning_rate'). If your model has a different name for the learning rate, set it with `.lr_find(attr_name=...)`. (lthost: `attr_name` in `[lr_find]` or `[callbacks.learning_rate_finder]`)");
    }
    bail!("The attribute name for the learning rate was set to {given}, but could not find this as a field in `model` or `model.hparams`.")
}

/// Lightning's refusals before a learning-rate search: one optimizer, automatic optimization.
fn searchable(opt: &crate::module::Optimization, name: &str) -> Result<()> {
    if opt.optimizers.len() != 1 {
        bail!("plugin `{name}`: `model.configure_optimizers()` returned {}, but learning rate finder only works with single optimizer", opt.optimizers.len());
    }
    if !opt.automatic {
        bail!("plugin `{name}` uses manual optimization: the learning rate finder steps the optimizer itself, so it needs automatic optimization");
    }
    Ok(())
}

/// The module's stored weights and buffers, by name (Lightning's checkpoint before the
/// search), copied to the CPU (as Lightning's is on disk: a copy on the device would take
/// memory from the search).
pub(crate) fn weights(ctx: &RunContext) -> Result<Vec<(String, Tensor)>> {
    tch::no_grad(|| stored(ctx).into_iter().map(|(name, t)| Ok((name, cpu_copy(&t)?))).collect())
}

/// A copy of `t` of its own on the CPU.
pub(crate) fn cpu_copy(t: &Tensor) -> Result<Tensor> {
    let mut copy = Tensor::f_empty(t.size(), (t.kind(), tch::Device::Cpu))?;
    copy.f_copy_(t)?;
    Ok(copy)
}

/// Puts [`weights`] back (Lightning's restore after the search); the module must hold the
/// same entries, as a checkpoint restore requires.
pub(crate) fn put_back(ctx: &RunContext, snapshot: &[(String, Tensor)]) -> Result<()> {
    let now = stored(ctx);
    let names = |v: &[(String, Tensor)]| v.iter().map(|(n, t)| (n.clone(), t.size())).collect::<Vec<_>>();
    if names(&now) != names(snapshot) {
        bail!("the module's parameters and buffers changed during the search (before: {:?}; after: {:?}): its weights cannot be put back", names(snapshot), names(&now));
    }
    tch::no_grad(|| -> Result<()> {
        for ((_, t), (_, saved)) in now.into_iter().zip(snapshot) {
            t.shallow_clone().f_copy_(saved)?;
        }
        Ok(())
    })
}

/// The entries a checkpoint stores, by name.
fn stored(ctx: &RunContext) -> Vec<(String, Tensor)> {
    ctx.params.stored().map(|e| (e.name.clone(), e.tensor.shallow_clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{quiet, serial, Points, Regression};

    fn search() -> LrFindConfig {
        LrFindConfig { num_training: 30, early_stop_threshold: None, ..LrFindConfig::default() }
    }

    #[test]
    fn the_suggestion_reaches_the_optimizer_the_fit_configures() {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Trainer::new(quiet(dir.path(), 10), None);
        let mut m = Regression::new();
        let (report, fit) =
            t.fit_after_lr_find(&mut m, &mut Points::default(), &serde_json::json!({}), &search()).expect("fit");
        let lr = report.and_then(|r| r.suggestion).map(|s| s.1).expect("a suggestion");
        assert_eq!(m.lr, lr, "set on the module");
        assert!(fit.global_step > 0);
    }

    /// A user callback that does nothing.
    struct Quiet;

    impl crate::callbacks::Callback for Quiet {
        fn name(&self) -> &str {
            "quiet"
        }
        fn on_hook(
            &mut self,
            _: crate::hooks::Hook,
            _: &crate::callbacks::HookInfo<'_>,
        ) -> Result<crate::callbacks::CallbackAction> {
            Ok(Default::default())
        }
    }

    #[test]
    fn a_search_leaves_the_trainers_settings_as_they_were() {
        // Lightning's test_trainer_reset_correctly (tuner.md row 3): the Trainer's settings,
        // callbacks and early stopping are the same after `lr_find` as before, after a search
        // that ran and after one that failed.
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Trainer::new(quiet(dir.path(), 10), None);
        t.cfg.accumulate_grad_batches = 2;
        t.cfg.max_steps = 7;
        t.builtins.lr_monitor = Some(Default::default());
        t.early_stopping = Some(crate::callbacks::early_stopping::EarlyStoppingConfig {
            monitor: "val_loss".into(),
            ..Default::default()
        });
        t.callbacks.push(Box::new(Quiet));
        let settings = |t: &Trainer<'_>| {
            let json = |v: serde_json::Result<serde_json::Value>| v.expect("serializable");
            (
                json(serde_json::to_value(&t.cfg)),
                json(serde_json::to_value(&t.builtins)),
                json(serde_json::to_value(&t.early_stopping)),
                t.callbacks.len(),
            )
        };
        let before = settings(&t);
        let report = t.lr_find(&mut Regression::new(), &mut Points::default(), &serde_json::json!({}), &search());
        assert!(report.expect("the search").is_some_and(|r| r.steps > 0));
        assert_eq!(settings(&t), before, "after a search");
        let bad = LrFindConfig { attr_name: "my_lr".into(), ..search() };
        let failed = t.fit_after_lr_find(&mut Regression::new(), &mut Points::default(), &serde_json::json!({}), &bad);
        assert!(failed.is_err(), "refused");
        assert_eq!(settings(&t), before, "after a failed search");
    }

    #[test]
    fn a_signal_during_the_search_ends_it_with_nothing_trained_or_saved() {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Trainer::new(quiet(dir.path(), 10), None);
        t.checkpoint.on_exception = true;
        t.signal = Some(std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(libc::SIGTERM as usize)));
        let mut m = Regression::new();
        let err = t
            .fit_after_lr_find(&mut m, &mut Points::default(), &serde_json::json!({}), &search())
            .expect_err("stopped")
            .to_string();
        assert!(err.contains("signal 15 stopped the learning-rate search"), "{err}");
        assert_eq!(m.lr, 0.05, "no suggestion applied");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "nothing written: {left:?}");
    }

    #[test]
    fn a_module_without_a_learning_rate_field_is_refused_with_lightnings_words() {
        let _one = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Trainer::new(quiet(dir.path(), 10), None);
        let mut m = Regression::new();
        let cfg = LrFindConfig { attr_name: "my_lr".into(), ..search() };
        let err =
            t.fit_after_lr_find(&mut m, &mut Points::default(), &serde_json::json!({}), &cfg).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "The attribute name for the learning rate was set to my_lr, but could not find this as a field in `model` or `model.hparams`."
        );
    }
}
