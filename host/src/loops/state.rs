//! What the loops share while a run lasts: the module, the run context, callbacks, the
//! logger, the progress bar, the progress counters and the metrics dictionaries.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::callbacks::early_stopping::EarlyStopping;
use crate::callbacks::model_checkpoint::ModelCheckpoint;
use crate::callbacks::{Callback, CallbackAction, HookInfo, ProgressBar};
use crate::config::TrainerConfig;
use crate::connectors::logger::ResultCollection;
use crate::context::RunContext;
use crate::hooks::{Hook, Owner};
use crate::hparams::SavedHparams;
use crate::loggers::Logger;
use crate::loops::evaluation::EvaluationLoop;
use crate::loops::interrupter::{Interrupter, StopReason};
use crate::loops::limits::LoopLimits;
use crate::loops::state_dict::Loops;
use crate::module::{DataModule, Module};

pub struct LoopState<'a> {
    /// The Trainer's settings (a search runs the loops under its own for a while).
    pub cfg: TrainerConfig,
    pub limits: LoopLimits,
    pub module: &'a mut dyn Module,
    /// The DataModule, during fit (its state goes into checkpoints).
    pub data: Option<&'a mut dyn DataModule>,
    pub ctx: RunContext,
    pub callbacks: Vec<Box<dyn Callback + 'a>>,
    /// The hooks the module and its own callbacks implement.
    pub module_hooks: crate::module::ModuleHooks,
    pub logger: Option<Box<dyn Logger>>,
    pub bar: ProgressBar,
    /// The loops' progress (each loop owns its own and its children's; checkpoints walk it).
    pub loops: Loops,
    /// Fit is running (its validation is the training epoch loop's `val_loop`).
    pub fitting: bool,
    /// Stop requests (max_time, a callback, EarlyStopping; honoured once min_epochs/min_steps
    /// are met) and signals.
    pub interrupter: Interrupter,
    /// The training epoch's logged values (hooks inside the epoch add to it).
    pub train_results: ResultCollection,
    /// What the module saved (`save_hyperparameters`): logged (Lightning's `hparams_initial`).
    pub hparams: SavedHparams,
    /// The module's hyper-parameters as checkpoints hold them (Lightning's `hparams`): what it
    /// saved, with what the learning-rate finder set since.
    pub checkpoint_hparams: serde_json::Map<String, serde_json::Value>,
    /// A learning-rate search runs: a signal stops it without saving (its weights are put
    /// back after it anyway), as Lightning's search has only its own callback attached.
    pub searching: bool,
    /// What the DataModule saved: logged beside the module's.
    pub data_hparams: SavedHparams,
    pub plugin_sha256: String,
    /// ModelCheckpoint, when checkpointing is on.
    pub checkpoint: Option<ModelCheckpoint>,
    /// EarlyStopping, when configured.
    pub early_stopping: Option<EarlyStopping>,
    /// The current epoch's data order (saved so a resumed epoch sees the same batches).
    pub epoch_order: Option<tch::Tensor>,
    /// The order of a resumed run's interrupted epoch (where it continues is the training
    /// epoch loop's `restart`).
    pub resume_order: Option<tch::Tensor>,
    pub root_dir: std::path::PathBuf,
    /// Lightning's Timer: wall time per stage, `max_time`'s clock.
    pub timer: crate::callbacks::timer::Timer,
    /// The current batch's size, the training_step's loss, and whether an optimizer step
    /// ends the batch (what batch-hook callbacks see).
    pub batch_size: Option<i64>,
    pub batch_loss: Option<tch::Tensor>,
    pub stepping: bool,
    /// The process's age when the first training step began (start-up time).
    pub first_step: Option<std::time::Duration>,
    /// Time the training loop waited for batches.
    pub data_wait: std::time::Duration,
    /// Where the current training batch stands, for a save when a signal stops a plugin
    /// mid-hook: the optimizer steps taken when it started, whether it stepped and
    /// `batches_that_stepped` does not count that yet, and whether one is under way.
    pub steps_at_batch_start: u64,
    pub step_pending: bool,
    /// A training batch is under way (from its start to the end of its iteration, in-loop
    /// validation included): the only place a signal's mid-hook save is made.
    pub in_batch: bool,
    /// A validation is due after the current batch and has not finished.
    pub val_due_pending: bool,
    /// `on_exception` ran (Lightning's `_interrupt` calls it once per run).
    pub on_exception_called: bool,
    /// OnExceptionCheckpoint (`[checkpoint] on_exception`): a run that fails (or a signal)
    /// saves `on_exception.ckpt`, in ModelCheckpoint's directory when the run has one, else in
    /// this one (the configured `dirpath`, or the root).
    pub on_exception_dir: Option<std::path::PathBuf>,
    /// The DDP strategy in a distributed run: its Reducer around training steps, rank 0's
    /// buffers before a forward; only global rank 0 writes logs and checkpoints.
    pub ddp: Option<crate::distributed::Ddp>,
    /// DDP, a rank other than 0: the run has loggers, held by rank 0 (Lightning's
    /// `trainer.loggers` exist on every rank; only their experiment is rank 0's).
    pub logger_elsewhere: bool,
    /// The latest validation run inside fit got through a batch (Lightning's
    /// `val_loop._has_run`): from then on a monitor it did not log is an error.
    pub val_has_run: bool,
    /// Rows written by evaluation steps logged with on_step (Lightning's
    /// `_seen_batches_per_dataloader`): each DataLoader's step, counting on across a fit's
    /// validations until its loaders are asked for again.
    pub eval_log_steps: Vec<u64>,
    /// When training started or the last evaluation run ended (a time-based
    /// val_check_interval counts from it).
    pub last_val_time: std::time::Instant,
    /// When the DataLoaders were last asked for (`reload_dataloaders_every_n_epochs`).
    pub reloads: crate::loops::reload::Reloads,
}

impl LoopState<'_> {
    /// Lightning's `_call_configure_model` (the hook under the precision's
    /// `module_init_context`) and then the precision's `convert_module`, as the strategy's
    /// setup follows it (before the optimizers are made).
    /// DDP: the ranks agree on a pending signal and a stop request (see [`Ddp::agree`]);
    /// a stop another rank asked for is this one's too. One process: its own signal.
    ///
    /// [`Ddp::agree`]: crate::distributed::Ddp::agree
    pub fn agree_on_stop(&mut self) -> Result<Option<i32>> {
        let Some(d) = self.ddp.as_ref() else { return Ok(self.interrupter.pending_signal()) };
        let (signal, stop) = d.agree(self.interrupter.pending_signal(), self.interrupter.should_stop())?;
        if stop && !self.interrupter.should_stop() {
            self.interrupter.request(crate::loops::interrupter::StopReason::OtherRank);
        }
        Ok(signal)
    }

    /// Global rank 0, or the only process: the one that writes logs, checkpoints and the
    /// progress bar (Lightning's `is_global_zero`).
    pub fn is_global_zero(&self) -> bool {
        self.ddp.as_ref().is_none_or(crate::distributed::Ddp::is_global_zero)
    }

    pub fn configure_model(&mut self) -> Result<()> {
        {
            let _dtype = self.ctx.precision.module_init_context();
            self.hook(Hook::ConfigureModel, None)?;
        }
        self.ctx.precision.convert_module(&self.ctx.params)
    }

    /// Calls `hook` on the module's own callbacks, then every other callback, then on the
    /// module (if it implements it): Lightning's order. Returns the module's answer (-1 from
    /// on_train_batch_start skips the epoch).
    pub fn hook(&mut self, hook: Hook, batch_idx: Option<u64>) -> Result<i32> {
        if hook == Hook::OnException {
            self.on_exception_called = true;
        }
        // What a step set `trainer.should_stop` to since the last hook.
        self.take_plugin_stop();
        // A search (the tuner's) runs with its own callback only, as Lightning's resets them.
        let file_callbacks =
            !self.searching && hook.owner() != Owner::Module && self.module_hooks.callbacks.contains(&hook);
        if hook == Hook::OnTrainBatchEnd
            && (file_callbacks || !self.callbacks.is_empty() || self.module_hooks.contains(&hook))
        {
            // Whoever has the hook sees this batch's values in callback_metrics and
            // logged_metrics (Lightning computes them when read): the one host sync, and only
            // when a callback or the module has the hook.
            self.take_step_metrics();
        }
        tracing::trace!(
            hook = hook.name(),
            ?batch_idx,
            epoch = self.ctx.current_epoch,
            step = self.ctx.global_step,
            "hook"
        );
        self.timer.on_hook(hook, self.ctx.stage);
        if file_callbacks {
            self.in_plugin(hook, |m, ctx| m.file_callback_hook(ctx, hook, batch_idx))?;
        }
        if hook.owner() != Owner::Module && !self.callbacks.is_empty() {
            self.run_callbacks(hook, batch_idx)?;
        }
        if hook.owner() == Owner::Callback || !self.module_hooks.contains(&hook) {
            return Ok(0);
        }
        self.in_plugin(hook, |m, ctx| m.hook(ctx, hook, batch_idx))
    }

    /// Runs `call` (the module's hook, or its own callbacks') as `hook`: `trainer.should_stop`
    /// as the loops have it, `self.log` under the hook's rules, and what the plugin set
    /// `should_stop` to taken after.
    fn in_plugin<T>(
        &mut self,
        hook: Hook,
        call: impl FnOnce(&mut dyn Module, &mut RunContext) -> Result<T>,
    ) -> Result<T> {
        self.ctx.should_stop = self.interrupter.should_stop();
        let previous = self.ctx.current_hook.replace(hook);
        let result = call(&mut *self.module, &mut self.ctx);
        self.ctx.current_hook = previous;
        self.take_plugin_stop();
        result
    }

    /// Whether any callback sees the run: the run's or the module's own.
    pub fn has_callbacks(&self) -> bool {
        !self.callbacks.is_empty() || !self.module_hooks.callbacks.is_empty()
    }

    /// Applies what the plugin set `trainer.should_stop` to (Lightning's flag: true asks the
    /// fit to stop, false withdraws a request; a signal stays).
    fn take_plugin_stop(&mut self) {
        match self.ctx.stop_set.take() {
            Some(true) => self.interrupter.request(StopReason::Plugin { name: self.module.name().to_string() }),
            Some(false) => self.interrupter.withdraw_request(),
            None => {}
        }
    }

    /// The training step's values into callback_metrics (bare names of forked ones too) and
    /// logged_metrics, each value read once (Lightning computes both when read).
    pub fn take_step_metrics(&mut self) {
        let (callback, logged) = self.train_results.read_step();
        self.ctx.logged_metrics.extend(logged);
        self.ctx.callback_metrics.extend(callback);
    }

    /// Lightning's `_log_hyperparams` (after on_fit_start in a fit, after set-up in
    /// validate/test): what the module and DataModule saved to log, to every logger, then
    /// each logger saves. Nothing to log (no `save_hyperparameters(logger=True)`): no
    /// `log_hyperparams` call.
    pub fn log_hyperparams(&mut self) -> Result<()> {
        // Lightning returns at once without loggers; under fast_dev_run its DummyLogger still
        // takes them (so a conflict is refused there too).
        let dummy = self.cfg.logger && self.cfg.fast_dev_run.batches().is_some();
        if self.logger.is_none() && !dummy {
            return Ok(());
        }
        let logged = crate::hparams::to_log(&self.hparams, &self.data_hparams)?;
        if let Some(l) = self.logger.as_mut() {
            if let Some(h) = &logged {
                l.log_hyperparams(h)?;
            }
            l.save()?;
        }
        Ok(())
    }

    /// Lightning's `reset_metrics`: callback, logged and progress-bar metrics emptied.
    pub fn clear_metrics(&mut self) {
        self.ctx.callback_metrics.clear();
        self.ctx.logged_metrics.clear();
        self.ctx.progress_bar_metrics.clear();
    }

    /// The evaluation loop running `stage` now.
    pub fn eval_loop(&mut self, stage: crate::context::Stage) -> &mut EvaluationLoop {
        self.loops.evaluation(stage, self.fitting)
    }

    /// Lightning's `should_update_logs`: in training, `(batches_that_stepped + 1)` is a
    /// multiple of `log_every_n_steps`; in evaluation, the batches seen are; or a stop is due.
    pub fn should_update_logs(&self) -> bool {
        let n = self.cfg.log_every_n_steps;
        if n == 0 {
            return false;
        }
        // Lightning's active loop: the fit loop while fit trains (its hooks outside the
        // batches included), else the evaluation loop that runs.
        let step = if self.ctx.stage == crate::context::Stage::Fit {
            self.loops.fit_loop.epoch_loop.batches_that_stepped + 1
        } else {
            // The running evaluation loop's batches this run (Lightning's `current.ready`).
            self.loops.evaluation_progress(self.ctx.stage, self.fitting).current.ready
        };
        step % n == 0 || self.interrupter.should_stop()
    }

    fn run_callbacks(&mut self, hook: Hook, batch_idx: Option<u64>) -> Result<()> {
        self.callbacks_act(hook, batch_idx, |cb, info| cb.on_hook(hook, info))
    }

    /// Continues an epoch restored inside it: its `on_train_epoch_start` ran before the
    /// checkpoint, so neither the module nor any callback gets it again (Lightning), but the
    /// callbacks that set the loop up at an epoch's start do so
    /// ([`Callback::on_train_epoch_resumed`]).
    pub fn resume_train_epoch(&mut self) -> Result<()> {
        self.callbacks_act(Hook::OnTrainEpochStart, None, |cb, info| cb.on_train_epoch_resumed(info))
    }

    /// Calls `call` on every callback for `hook`, then applies what they asked for (a stop,
    /// the accumulation factor, metrics, logged values).
    fn callbacks_act(
        &mut self,
        hook: Hook,
        batch_idx: Option<u64>,
        mut call: impl FnMut(&mut dyn Callback, &HookInfo<'_>) -> Result<CallbackAction>,
    ) -> Result<()> {
        let batch_hook = batch_idx.is_some();
        let info = HookInfo {
            stage: self.ctx.stage,
            batch_idx,
            dataloader_idx: if batch_hook { self.ctx.dataloader_idx } else { None },
            current_epoch: self.ctx.current_epoch,
            global_step: self.ctx.global_step,
            callback_metrics: &self.ctx.callback_metrics,
            logged_metrics: &self.ctx.logged_metrics,
            batches_that_stepped: self.loops.fit_loop.epoch_loop.batches_that_stepped,
            total_batches: match self.ctx.training {
                true => self.loops.fit_loop.epoch_loop.batch_progress.total.ready,
                false => self.loops.evaluation_progress(self.ctx.stage, self.fitting).total.ready,
            },
            batch_size: if batch_hook { self.batch_size } else { None },
            should_update_logs: self.should_update_logs(),
            stepping: self.stepping,
            optim: self.ctx.optim.as_ref(),
            has_logger: self.logger.is_some() || self.logger_elsewhere,
            device: self.ctx.device,
            loss: if hook == Hook::OnTrainBatchEnd { self.batch_loss.as_ref() } else { None },
        };
        let mut actions = Vec::new();
        for cb in &mut self.callbacks {
            let name = cb.name().to_string();
            match call(cb.as_mut(), &info) {
                Ok(action) => actions.push((name, action)),
                // A failed run tells every callback: one that cannot take it (a plugin that
                // trapped is gone) does not keep it from the others.
                Err(e) if hook == Hook::OnException => {
                    eprintln!("warning: callback `{name}`, hook `on_exception`: {e:#}");
                }
                Err(e) => anyhow::bail!("callback `{name}`, hook `{}`: {e:#}", hook.name()),
            }
        }
        for (name, action) in actions {
            if let Some(reason) = action.stop {
                let reason = crate::plugin::stdio::printable(&reason, false);
                println!("callback `{name}` requested a stop: {reason}");
                self.interrupter.request(StopReason::Callback { name: name.clone(), reason });
            }
            if let Some(n) = action.accumulate_grad_batches {
                if self.cfg.accumulate_grad_batches != 1 {
                    anyhow::bail!("callback `{name}` sets accumulate_grad_batches, but trainer.accumulate_grad_batches = {} is set too: use one or the other (Lightning refuses both)", self.cfg.accumulate_grad_batches);
                }
                self.limits.accumulate = n;
            }
            if !action.metrics.is_empty() {
                let m: BTreeMap<String, f64> = action.metrics.into_iter().collect();
                if action.metrics_are_callback_metrics {
                    self.ctx.callback_metrics.extend(m.clone());
                }
                let step = action.metrics_step.unwrap_or(self.loops.fit_loop.epoch_loop.batches_that_stepped);
                if let Some(l) = self.logger.as_mut() {
                    l.log_metrics(&m, step)?;
                }
                self.ctx.logged_metrics.extend(m);
            }
            let previous = self.ctx.current_hook.replace(hook);
            for (k, v) in action.logs {
                let t = tch::Tensor::f_from_slice(&[v as f32])
                    .and_then(|t| t.f_reshape([]))
                    .map_err(|e| anyhow::anyhow!("callback `{name}`: {e}"))?;
                let opts = crate::context::LogOptions {
                    prog_bar: false,
                    logger: true,
                    on_step: None,
                    on_epoch: None,
                    reduce_fx: crate::context::ReduceFx::Mean,
                    batch_size: None,
                    add_dataloader_idx: true,
                    sync_dist: false,
                };
                self.ctx.log(&k, t, opts).map_err(|e| anyhow::anyhow!("callback `{name}`: {e}"))?;
            }
            self.ctx.current_hook = previous;
        }
        Ok(())
    }

    /// Sends metrics to the logger with Lightning's `epoch` column.
    pub fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()> {
        self.log_row(metrics, step, true)
    }

    /// Sends metrics to the logger at `step`, with the `epoch` column or without it (an
    /// evaluation step's row, as Lightning writes it). As Lightning's, a value the module
    /// logged as `step` is the row's step and one logged as `epoch` is kept.
    pub fn log_row(&mut self, metrics: &BTreeMap<String, f64>, step: u64, with_epoch: bool) -> Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        let mut m = metrics.clone();
        let mut step = step;
        if with_epoch {
            // Lightning's log_metrics without a step (training and epoch rows): a logged `step`
            // is the row's step (and the row gets no epoch column of its own), else the current
            // epoch is added. A negative one is written as 0 (steps are unsigned here).
            match m.remove("step") {
                Some(s) if !s.is_finite() => anyhow::bail!("a logged `step` must be a finite number, got {s}"),
                Some(s) => step = s.max(0.0) as u64,
                None => {
                    m.entry("epoch".into()).or_insert(self.ctx.current_epoch as f64);
                }
            }
        }
        self.ctx.logged_metrics.extend(metrics.clone());
        if let Some(l) = self.logger.as_mut() {
            l.log_metrics(&m, step)?;
        }
        Ok(())
    }

    /// min_epochs and min_steps are met: a stop request may end the run.
    pub fn can_stop_early(&self) -> bool {
        self.loops.fit_loop.epoch_progress.current.processed >= self.limits.min_epochs
            && self.ctx.global_step >= self.limits.min_steps
    }

    pub fn max_steps_reached(&self) -> bool {
        self.limits.max_steps.is_some_and(|m| self.ctx.global_step >= m)
    }

    /// Runs EarlyStopping if it checks at this point (`at_train_epoch_end` or after a
    /// validation run); a stop is honoured once min_epochs/min_steps are met.
    pub fn early_stopping_check(&mut self, at_train_epoch_end: bool) -> Result<()> {
        // Lightning's EarlyStopping skips its check under fast_dev_run.
        if self.cfg.fast_dev_run.batches().is_some() {
            return Ok(());
        }
        let every_n_epochs = self.limits.check_val_every_n_epoch;
        let epoch = self.ctx.current_epoch;
        let Some(es) = self.early_stopping.as_mut() else { return Ok(()) };
        if es.checks_on_train_epoch_end(&self.cfg.val_check_interval(), every_n_epochs) != at_train_epoch_end {
            return Ok(());
        }
        if es.check(&self.ctx.callback_metrics, epoch)? {
            let reason = es.reason.clone().unwrap_or_default();
            println!("{reason}");
            self.interrupter.request(StopReason::EarlyStopping(reason));
        }
        Ok(())
    }

    /// Checks max_time against the Timer's training clock (after every batch, as Lightning).
    pub fn check_time(&mut self) {
        if self.limits.max_time.is_some_and(|t| self.timer.elapsed(crate::context::Stage::Fit) >= t) {
            self.interrupter.request(StopReason::MaxTime);
        }
    }
}
