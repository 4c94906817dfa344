//! Lightning's Tuner: `lthost lr-find` runs the learning-rate range test on the plugin's
//! model and data with its single optimizer: the plugin's schedulers are replaced by the
//! range schedule, other callbacks, loggers, checkpointing, the sanity check and the
//! progress bar are off, validation is limited to `num_training` batches, and training
//! stops after `num_training` optimizer steps or when the loss diverges. Nothing the run
//! would keep is written; the results are the learning rates, smoothed losses and the
//! suggestion (see `callbacks/lr_finder.rs`).

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::callbacks::lr_finder::{suggestion, LrFindConfig, LrFindResults, LrFinderCallback};
use crate::config::Limit;
use crate::context::Stage;
use crate::engine::optim::{Interval, SchedulerSpec};
use crate::hooks::Hook;
use crate::loops::fit;
use crate::module::{DataModule, Module};
use crate::trainer::{configure_optimizers, optimizer_set, Trainer};

#[derive(Debug)]
pub struct LrFindReport {
    pub results: LrFindResults,
    /// The suggestion's index in the results and its learning rate.
    pub suggestion: Option<(usize, f64)>,
    /// Optimizer steps taken (fewer than `num_training` when the loss diverged).
    pub steps: u64,
    /// The run's seed: a fit with it starts from the weights the search started from.
    pub seed: u64,
}

impl Trainer<'_> {
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
        if self.cfg.fast_dev_run.batches().is_some() {
            eprintln!("warning: Skipping learning rate finder since `fast_dev_run` is enabled.");
            return Ok(None);
        }
        if self.ckpt_path.is_some() {
            bail!("lr-find searches from the plugin's own initial weights: --ckpt-path is not taken (Lightning's Tuner.lr_find has no ckpt_path)");
        }
        let saved = (
            self.cfg.clone(),
            std::mem::take(&mut self.builtins),
            self.early_stopping.take(),
            std::mem::take(&mut self.callbacks),
        );
        // Lightning keeps the max_epochs its Trainer resolved (1000 when no limit was given) and
        // swaps out every callback, the Timer's max_time with them.
        self.cfg.max_epochs = Some(self.cfg.effective_max_epochs().map_or(-1, |m| i64::try_from(m).unwrap_or(-1)));
        self.cfg.max_time = None;
        self.cfg.max_steps = cfg.num_training as i64;
        self.cfg.limit_val_batches = Limit::Batches(cfg.num_training);
        self.cfg.num_sanity_val_steps = 0;
        self.cfg.logger = false;
        self.cfg.enable_checkpointing = false;
        self.cfg.enable_progress_bar = false;
        let out = self.range_test(module, data, hparams, cfg);
        (self.cfg, self.builtins, self.early_stopping, self.callbacks) = saved;
        out.map(Some)
    }

    fn range_test(
        &mut self,
        module: &mut dyn Module,
        data: &mut dyn DataModule,
        hparams: &Value,
        cfg: &LrFindConfig,
    ) -> Result<LrFindReport> {
        let mut p = self.prepare(module, data, hparams, Stage::Fit)?;
        let seed = p.seed;
        let (train, val, limits) = self.fit_data(data, &mut p.ctx, "lr_find trains, so it needs one", false)?;
        let finder = LrFinderCallback::new(cfg, self.cfg.accumulate_grad_batches);
        let results = finder.results.clone();
        self.callbacks = vec![Box::new(finder)];
        let mut st = self.state(module, Some(data), p, limits, None)?;
        st.fitting = true;
        st.hook(Hook::Setup, None)?;
        st.hook(Hook::ConfigureModel, None)?;
        let (opt, name) = configure_optimizers(&mut st)?;
        if opt.optimizers.len() != 1 {
            bail!("plugin `{name}`: `model.configure_optimizers()` returned {}, but learning rate finder only works with single optimizer", opt.optimizers.len());
        }
        if !opt.automatic {
            bail!("plugin `{name}` uses manual optimization: the learning rate finder steps the optimizer itself, so it needs automatic optimization");
        }
        let spec = SchedulerSpec {
            kind: cfg.schedule(),
            optimizer: 0,
            interval: Interval::Step,
            frequency: 1,
            monitor: None,
            strict: true,
        };
        st.ctx.optim = Some(optimizer_set(&st, &name, &opt.optimizers, &[spec], true)?);
        let (mut train, mut val) = (train, val);
        crate::loops::reload::start(&mut st, &mut train, &mut val)?;
        fit::run(&mut st, &mut train, &mut val)?;
        st.hook(Hook::Teardown, None)?;
        let steps = st.ctx.global_step;
        drop(st);
        let results = results.borrow().clone();
        let suggestion = suggestion(&results, 10, 1).map_err(|e| anyhow!("lr_find suggestion: {e}"))?;
        Ok(LrFindReport { results, suggestion, steps, seed })
    }
}
