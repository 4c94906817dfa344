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

use super::fit_trials::{holds, FitTrials, Start};
use super::{put_back, weights};
use crate::callbacks::batch_size_finder::{search, BatchSizeConfig, Trials};
use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::hooks::Hook;
use crate::loops::limits::LoopLimits;
use crate::module::{DataModule, Module, Split};
use crate::trainer::{configure_optimizers, fit_numbers, install_optimizers, FitReport, Prepared, Trainer};

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
        let checkpoint_hparams = module_hparams.with_set(&cfg.batch_arg_name, serde_json::json!(size));
        // Lightning's second fit sets the DataModule up again.
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
        st.configure_model()?;
        let (opt, name) = configure_optimizers(&mut st)?;
        install_optimizers(&mut st, &name, &opt)?;
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

/// What the search leaves for the fit: the size found and the configured module's context.
struct Searched {
    size: i64,
    ctx: crate::context::RunContext,
    hparams: crate::hparams::SavedHparams,
    module_hooks: crate::module::ModuleHooks,
}
