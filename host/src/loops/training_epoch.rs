//! One training epoch, batch by batch in Lightning's order: transfer hooks,
//! `on_train_batch_start` (-1 ends the epoch), `training_step`, then (automatic
//! optimization) zero-grad, backward and, on accumulation boundaries, clipping, the optimizer
//! step and step-interval schedulers; `on_train_batch_end`, step-level logging, validation
//! when due. Then `on_train_epoch_end` and the epoch-level metrics.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use tch::Tensor;

use crate::connectors::logger::read;
use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::engine::scalar::zero_dim;
use crate::hooks::Hook;
use crate::loops::checkpointing::{self, Trigger};
use crate::loops::evaluation::{self, EvaluationLoop};
use crate::loops::optimization::{self, automatic, Interval, OptimizerSet};
use crate::loops::reload;
use crate::loops::state::LoopState;
use crate::loops::state_dict::{field, Stateful};
use crate::progress::Progress;

/// Lightning's `_TrainingEpochLoop` state: its batches' progress, `_batches_that_stepped`,
/// the validation loop it runs, and where a restored epoch resumes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingEpochLoop {
    pub batch_progress: Progress,
    /// Lightning's `_batches_that_stepped`: the step written with logged training metrics.
    pub batches_that_stepped: u64,
    pub val_loop: EvaluationLoop,
    /// Set by a restored checkpoint (Lightning's `restarting`); the first epoch takes it.
    pub restart: Option<Restart>,
    /// Lightning's warning that `training_step` returned None was given (once a run).
    pub warned_none_loss: bool,
}

/// Where a restored run resumes inside the training epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Restart {
    /// Training batches of the current epoch already done (0: at an epoch boundary).
    pub batches_done: u64,
    /// A validation run was due after the last batch and had not run yet.
    pub val_pending: bool,
    /// Saved at a training epoch's end (Lightning's `on_train_epoch_end`, where its loops
    /// count that epoch processed but not yet completed: `current_epoch` is one less there).
    pub at_epoch_end: bool,
}

impl Stateful for TrainingEpochLoop {
    fn own_state(&self) -> serde_json::Value {
        let r = self.restart.unwrap_or_default();
        serde_json::json!({
            "_batches_that_stepped": self.batches_that_stepped,
            "batches_done": r.batches_done,
            "val_pending": r.val_pending,
            "at_epoch_end": r.at_epoch_end,
        })
    }
    fn load_own_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.batches_that_stepped = field(state, "_batches_that_stepped")?;
        self.restart = Some(Restart {
            batches_done: field(state, "batches_done")?,
            val_pending: field(state, "val_pending")?,
            at_epoch_end: field(state, "at_epoch_end")?,
        });
        Ok(())
    }
    fn trackers(&self) -> Vec<(&'static str, &Progress)> {
        vec![("batch_progress", &self.batch_progress)]
    }
    fn trackers_mut(&mut self) -> Vec<(&'static str, &mut Progress)> {
        vec![("batch_progress", &mut self.batch_progress)]
    }
    fn children(&self) -> Vec<(&'static str, &dyn Stateful)> {
        vec![("val_loop", &self.val_loop)]
    }
    fn children_mut(&mut self) -> Vec<(&'static str, &mut dyn Stateful)> {
        vec![("val_loop", &mut self.val_loop)]
    }
}

/// What an epoch leaves for the progress bar and the summary.
pub struct EpochOutcome {
    /// Epoch-level training metrics for the loggers.
    pub logged: BTreeMap<String, f64>,
    /// For the progress bar: prog-bar metrics, validation's, and the epoch's mean loss.
    pub prog_bar: BTreeMap<String, f64>,
    pub batches: usize,
    /// It reached its last batch (or a batch that ended it with -1) in this process: an
    /// epoch resumed from inside, or cut short, does not step epoch-interval
    /// ReduceLROnPlateau (Lightning's `_num_ready_batches_reached` and `restarting`: the
    /// monitored metric of a partial epoch is not the epoch's).
    pub completed_here: bool,
}

fn optim<'s>(st: &'s mut LoopState<'_>) -> Result<&'s mut OptimizerSet> {
    st.ctx.optim.as_mut().ok_or_else(|| anyhow!("internal: no optimizers configured"))
}

fn should_validate(st: &LoopState<'_>, val: &[DataLoader], idx: usize, last: bool) -> bool {
    let l = &st.limits;
    // A loader that is empty now may not be once asked for again.
    if val.is_empty() || (!l.validates() && !st.reloads.val_due(st.ctx.current_epoch)) {
        return false;
    }
    if !l.validates_in(st.ctx.current_epoch) {
        return false;
    }
    if l.val_at_pass_end && last {
        return true;
    }
    // Lightning validates when the run is about to stop early (a stop request honoured).
    if st.interrupter.should_stop() && st.can_stop_early() {
        return true;
    }
    if let Some(t) = l.val_check_seconds {
        return st.last_val_time.elapsed().as_secs_f64() >= t;
    }
    let iteration = match l.check_val_every_n_epoch {
        None => st.loops.fit_loop.epoch_loop.batch_progress.total.ready.saturating_sub(1) as usize,
        Some(_) => idx,
    };
    (iteration + 1) % l.val_check_batch == 0
}

/// Automatic optimization of one batch (Lightning's closure and optimizer step). A batch
/// whose training_step returned None still zeroes the gradients at a window start and
/// steps (with nothing accumulated, the step changes nothing) and the schedulers.
fn optimize(st: &mut LoopState<'_>, loss: Option<&Tensor>, idx: usize, stepping: bool, last: bool) -> Result<()> {
    let n = st.limits.accumulate;
    if idx as u64 % n == 0 {
        st.hook(Hook::OnBeforeZeroGrad, Some(idx as u64))?;
        optim(st)?.zero_grad(0)?;
    }
    if let Some(loss) = loss {
        automatic::check_loss(st.module.name(), loss)?;
        st.hook(Hook::OnBeforeBackward, Some(idx as u64))?;
        optim(st)?.backward(loss, n as f64)?;
        st.hook(Hook::OnAfterBackward, Some(idx as u64))?;
    }
    if stepping {
        // 16-mixed: Lightning's MixedPrecision unscales before the hook and clipping (not
        // when training_step returned None).
        if loss.is_some() {
            optim(st)?.unscale(0)?;
        }
        st.hook(Hook::OnBeforeOptimizerStep, Some(idx as u64))?;
        if let Some((value, by_norm)) = st.limits.clip {
            optim(st)?.clip(0, value, by_norm)?;
        }
        if loss.is_none() && optim(st)?.scaler.is_some() {
            optim(st)?.count_step(0)?;
        } else {
            optimization::step_optimizer(st.module, &mut st.ctx, 0)?;
        }
        optimization::step_schedulers(st.module, &mut st.ctx, Interval::Step, idx as u64 + 1, false, None)?;
        if last {
            let epoch = st.ctx.current_epoch + 1;
            optimization::step_schedulers(st.module, &mut st.ctx, Interval::Epoch, epoch, false, None)?;
        }
    }
    Ok(())
}

pub fn run(st: &mut LoopState<'_>, loader: &DataLoader, val: &mut Vec<DataLoader>) -> Result<EpochOutcome> {
    let total = st.limits.train_batches;
    let automatic = st.ctx.optim.as_ref().is_some_and(|o| o.automatic);
    let mut loss_sum: Option<Tensor> = None;
    let mut batches = 0usize;
    let mut shown_val: BTreeMap<String, f64> = BTreeMap::new();
    // A resumed epoch continues after its last completed batch, in the same data order.
    let resume = st.loops.fit_loop.epoch_loop.restart.take();
    let start = resume.as_ref().map(|r| r.batches_done as usize).unwrap_or(0).min(total);
    let order = if start > 0 { st.resume_order.take() } else { None };
    if start == 0 {
        st.loops.fit_loop.epoch_loop.batch_progress.reset_current();
        // The validation loop counts the batches it saw this epoch (Lightning resets its
        // total at each epoch's start: it validates several times per epoch).
        st.loops.fit_loop.epoch_loop.val_loop.batch_progress.total = crate::progress::Counter::default();
    }
    st.train_results.reset();
    st.ctx.is_last_batch = false;
    st.ctx.stage = Stage::Fit;
    st.ctx.set_training(true);
    st.bar.on_train_epoch_start(st.ctx.current_epoch, st.limits.train_bar_total(st.ctx.global_step));
    // A run restored inside this epoch ran its on_train_epoch_start before the checkpoint.
    let resumed = resume.is_some_and(|r| r.batches_done > 0);
    if resumed {
        st.resume_train_epoch()?;
    } else {
        st.hook(Hook::OnTrainEpochStart, None)?;
    }
    // What on_train_start and on_train_epoch_start logged weighs 1 (no batch yet: Lightning's
    // `_extract_batch_size` without `results.batch`).
    st.train_results.add(std::mem::take(&mut st.ctx.logs), 1)?;
    let pass = loader.epoch_from(st.ctx.device, order, start, st.ctx.current_epoch)?;
    st.epoch_order = pass.order();
    let pending = resume.as_ref().is_some_and(|r| r.val_pending) && st.limits.validates();
    if pending {
        let step = st.loops.fit_loop.epoch_loop.batches_that_stepped.saturating_sub(1);
        let during = evaluation::During::Fit { zero_grad: true };
        // Due until it finishes: a failure or a signal inside it saves it as due again.
        st.val_due_pending = true;
        let batches = st.limits.val_batches.clone();
        let m = evaluation::run(st, val, Stage::Validate, &batches, during, Some(step))?;
        st.val_due_pending = false;
        shown_val.extend(m.prog_bar);
        st.ctx.stage = Stage::Fit;
        st.ctx.set_training(true);
        // As any validation in fit: EarlyStopping and ModelCheckpoint at its end.
        st.early_stopping_check(false)?;
        let pos = checkpointing::position(st, start, false);
        checkpointing::save(st, Trigger::ValidationEnd, st.ctx.current_epoch, pos)?;
        st.last_val_time = std::time::Instant::now();
    }
    // A stop that validation asked for ends the epoch before another batch (Lightning checks
    // `done` right after a restarted validation).
    let stop_now = st.interrupter.should_stop() && st.can_stop_early();
    let mut batches_iter = pass.take(if stop_now { 0 } else { total.saturating_sub(start) }).enumerate().peekable();
    // A pass of unknown length knows its last batch by looking one ahead, as Lightning's
    // prefetching fetcher does for a DataLoader without a length (the next batch is made
    // before this one's hooks and step); a sized pass never fetches ahead.
    let unknown_length = loader.num_batches() == crate::module::UNBOUNDED;
    // A validation ran after the latest batch: callback_metrics took that batch's values
    // before it, and its own since.
    let mut validated_after_batch = false;
    loop {
        // Time spent waiting for the next batch (gathering it, or for the prefetcher).
        let waited = std::time::Instant::now();
        let Some((i, batch)) = batches_iter.next() else { break };
        validated_after_batch = false;
        st.data_wait += waited.elapsed();
        let idx = i + start;
        let i = Some(idx as u64);
        let last = idx + 1 == total
            || (unknown_length && {
                let ahead = std::time::Instant::now();
                let end = batches_iter.peek().is_none();
                st.data_wait += ahead.elapsed();
                end
            });
        st.ctx.is_last_batch = last;
        st.loops.fit_loop.epoch_loop.batch_progress.increment_ready();
        let batch = batch?;
        // Lightning's `convert_input` (a true precision's dtype), before the transfer hooks.
        let batch = st.ctx.precision.convert_input(batch)?;
        // The batch-transfer hooks see this batch (and a Lightning file may replace it there).
        st.ctx.batch = batch.iter().map(Tensor::shallow_clone).collect();
        st.hook(Hook::OnBeforeBatchTransfer, i)?;
        st.hook(Hook::OnAfterBatchTransfer, i)?;
        let last_bs = batch.first().map(|t| t.size()[0]).unwrap_or(1);
        st.batch_size = Some(last_bs);
        st.stepping = !automatic || (idx as u64 + 1) % st.limits.accumulate == 0 || last;
        if st.hook(Hook::OnTrainBatchStart, i)? == -1 {
            st.ctx.batch.clear();
            // Lightning makes the skipping batch the epoch's last: its non-plateau schedulers
            // step there as after any last batch (step-interval ones included), though no
            // optimizer step ran.
            // It counts as ready and processed, never started (Lightning's progress).
            st.loops.fit_loop.epoch_loop.batch_progress.increment_processed();
            st.ctx.is_last_batch = true;
            if automatic && st.ctx.optim.is_some() {
                optimization::step_schedulers(st.module, &mut st.ctx, Interval::Step, idx as u64 + 1, false, None)?;
                let epoch = st.ctx.current_epoch + 1;
                optimization::step_schedulers(st.module, &mut st.ctx, Interval::Epoch, epoch, false, None)?;
            }
            break;
        }
        st.loops.fit_loop.epoch_loop.batch_progress.increment_started();
        st.in_batch = true;
        st.steps_at_batch_start = st.ctx.optim.as_ref().map(|o| o.progress.step.total.completed).unwrap_or(0);
        if st.first_step.is_none() {
            st.first_step = crate::startup::since_process_start();
        }
        st.ctx.current_hook = Some(Hook::TrainingStep);
        // Lightning's `train_step_context`: autocast (mixed) or the default dtype (true).
        // DDP's forward around the step; while accumulating, Lightning's `no_sync`.
        let sync_grads = st.stepping;
        if let Some(d) = st.ddp.as_mut() {
            d.pre_forward(true, sync_grads)?;
        }
        let forward = st.ctx.precision.forward_context(st.ctx.device);
        let loss = st.module.training_step(&mut st.ctx, &batch, idx as u64);
        drop(forward);
        st.ctx.current_hook = None;
        let loss = loss?;
        if automatic && loss.is_none() && st.ddp.is_some() {
            anyhow::bail!("plugin `{}`: `training_step` returned None in a DDP run: every rank must return a loss at every step (the others would wait for its gradients; Lightning does not support skipping a step with several devices either)", st.module.name());
        }
        // Manual optimization: the plugin's own backward was prepared for in the step (and
        // Lightning turns the sync off for DDP's post-forward there).
        if let Some(d) = st.ddp.as_mut() {
            let outputs: Vec<&Tensor> = loss.iter().collect();
            d.post_forward(true, sync_grads && automatic, &outputs)?;
        }
        if automatic && loss.is_none() && !st.loops.fit_loop.epoch_loop.warned_none_loss {
            st.loops.fit_loop.epoch_loop.warned_none_loss = true;
            eprintln!("warning: `training_step` returned `None`. If this was on purpose, ignore this warning...");
        }
        let stepping = !automatic || (idx as u64 + 1) % st.limits.accumulate == 0 || last;
        if automatic {
            optimize(st, loss.as_ref(), idx, stepping, last)?;
        }
        st.step_pending = stepping;
        if let Some(loss) = &loss {
            let d = loss.f_detach().and_then(zero_dim).map_err(|e| anyhow!("reading the loss: {e}"))?;
            loss_sum = Some(match loss_sum {
                Some(s) => s.f_add(&d).map_err(|e| anyhow!("{e}"))?,
                None => d,
            });
        }
        st.ctx.global_step = st.ctx.optim.as_ref().map(|o| o.progress.step.total.completed).unwrap_or(0);
        st.loops.fit_loop.epoch_loop.batch_progress.increment_processed();
        st.train_results.add(std::mem::take(&mut st.ctx.logs), last_bs)?;
        // What callbacks get as the step's loss: Lightning's `outputs["loss"]`, divided by
        // accumulate_grad_batches in automatic optimization (as backward got it).
        let acc = st.limits.accumulate;
        st.batch_loss = match &loss {
            Some(l) if automatic && acc > 1 => {
                Some(l.f_div_scalar(acc as f64).map_err(|e| anyhow!("loss / {acc}: {e}"))?)
            }
            Some(l) => Some(l.shallow_clone()),
            None => None,
        };
        // A signal that stops a plugin inside this hook counts the batch done: a validation
        // due after it is due then too.
        st.val_due_pending = should_validate(st, val, idx, last);
        st.hook(Hook::OnTrainBatchEnd, i)?;
        st.batch_loss = None;
        st.ctx.batch.clear();
        st.train_results.add(std::mem::take(&mut st.ctx.logs), last_bs)?;
        batches += 1;
        st.check_time();
        // DDP: the ranks agree on a signal and a stop here, before anything below depends on
        // them (logging, whether to validate), so every rank takes the same branch.
        let agreed_signal = match st.ddp.is_some() {
            true => Some(st.agree_on_stop()?),
            false => None,
        };

        let every = st.cfg.log_every_n_steps;
        if stepping
            && every > 0
            && ((st.loops.fit_loop.epoch_loop.batches_that_stepped + 1) % every == 0 || st.interrupter.should_stop())
        {
            let m = read(&st.train_results.step_metrics(), |r| r.logger);
            let step = st.loops.fit_loop.epoch_loop.batches_that_stepped;
            st.log_metrics(&m, step)?;
        }
        let shown = if st.bar.wants_refresh() {
            let mut m = read(&st.train_results.step_metrics(), |r| r.prog_bar);
            if let Some(v) = loss.as_ref().and_then(|l| l.f_double_value(&[]).ok()) {
                m.insert("loss".into(), v);
            }
            Some(m)
        } else {
            None
        };
        st.bar.on_train_batch_end(shown.as_ref());
        st.loops.fit_loop.epoch_loop.batch_progress.increment_completed();
        let global_step = st.ctx.global_step;
        crate::fault::point("step", || format!("global step {global_step}"));

        let mut val_due = should_validate(st, val, idx, last);
        // A time-based interval runs on each rank's clock: validation is due when it is on any.
        if let (Some(d), Some(_)) = (st.ddp.as_ref(), st.limits.val_check_seconds) {
            val_due = d.any(val_due)?;
        }
        st.val_due_pending = val_due;
        let stepped = u64::from(stepping);
        {
            let mut pos = checkpointing::position(st, idx + 1, val_due);
            pos.loops.fit_loop.epoch_loop.batches_that_stepped += stepped;
            // Lightning defers a monitored save at the epoch's last batch when validation is
            // on for this epoch (whether or not it runs right after this batch).
            let val_on = st.limits.validates() && st.limits.validates_in(st.ctx.current_epoch);
            let trigger = Trigger::TrainBatchEnd { val_follows: last && val_on };
            checkpointing::save(st, trigger, st.ctx.current_epoch, pos)?;
        }
        if val_due {
            reload::val(st, val)?;
        }
        // A validation loader reloaded empty skips the run, its hooks and saves (Lightning's
        // `val_loop.skip`).
        if val_due && st.limits.validates() {
            // Lightning's callback_metrics hold this batch's values when validation starts
            // (its own values then win on a shared name): one read per validation run.
            st.take_step_metrics();
            let step = st.loops.fit_loop.epoch_loop.batches_that_stepped;
            // Lightning zeroes the grads before it only outside an accumulation window
            // (`on_validation_model_zero_grad` when `not _should_accumulate()`).
            let during = evaluation::During::Fit { zero_grad: stepping };
            let batches = st.limits.val_batches.clone();
            let m = evaluation::run(st, val, Stage::Validate, &batches, during, Some(step))?;
            validated_after_batch = true;
            // Finished: a failure after it (EarlyStopping, the save) does not run it again.
            st.val_due_pending = false;
            shown_val.extend(m.prog_bar);
            st.ctx.stage = Stage::Fit;
            st.ctx.set_training(true);
            st.early_stopping_check(false)?;
            let mut pos = checkpointing::position(st, idx + 1, false);
            pos.loops.fit_loop.epoch_loop.batches_that_stepped += stepped;
            checkpointing::save(st, Trigger::ValidationEnd, st.ctx.current_epoch, pos)?;
            // A time-based interval counts from the end of validation's callbacks (Lightning).
            st.last_val_time = std::time::Instant::now();
        }
        st.val_due_pending = false;
        if automatic && stepping && optim(st)?.has_plateau(Interval::Step) {
            // Lightning steps a step-interval ReduceLROnPlateau at the end of the batch, after
            // its metrics are logged and a validation run that was due, on the monitored
            // metric's current value (this batch's, for a value logged on the step).
            let mut metrics = st.ctx.callback_metrics.clone();
            metrics.extend(read(&st.train_results.step_callback_metrics(), |_| true));
            optimization::step_schedulers(
                st.module,
                &mut st.ctx,
                Interval::Step,
                idx as u64 + 1,
                true,
                Some(&metrics),
            )?;
        }
        if stepping {
            st.loops.fit_loop.epoch_loop.batches_that_stepped += 1;
        }
        st.step_pending = false;
        st.in_batch = false;
        let pending = match agreed_signal {
            Some(s) => s,
            None => st.interrupter.pending_signal(),
        };
        if let Some(sig) = pending {
            checkpointing::interrupt(st, sig, idx + 1)?;
            return Ok(EpochOutcome {
                logged: BTreeMap::new(),
                prog_bar: BTreeMap::new(),
                batches,
                completed_here: false,
            });
        }
        if st.max_steps_reached() || (st.interrupter.should_stop() && st.can_stop_early()) {
            break;
        }
    }
    // What callback_metrics hold at the epoch's end (Lightning computes them when read, its
    // epoch end reached before on_train_epoch_end); again after it, with what it logged. The
    // last batch's step values came in at its end (Lightning's `on_batch_end`): a validation
    // after it keeps its own values under a shared name (the epoch end reads on_step=False).
    if !validated_after_batch {
        st.take_step_metrics();
    }
    st.ctx.callback_metrics.extend(read(&st.train_results.epoch_callback_metrics(), |_| true));
    st.ctx.logged_metrics.extend(read(&st.train_results.epoch_metrics(), |r| r.logger));
    st.hook(Hook::OnTrainEpochEnd, None)?;
    // Lightning drops the batch at each batch's end: what an epoch hook logs weighs 1.
    st.train_results.add(std::mem::take(&mut st.ctx.logs), 1)?;
    let epoch = st.train_results.epoch_metrics();
    let mut prog_bar = read(&st.train_results.step_metrics(), |r| r.prog_bar);
    prog_bar.extend(read(&epoch, |r| r.prog_bar));
    if let Some(s) = loss_sum {
        if let Ok(v) = s.f_double_value(&[]) {
            prog_bar.insert("loss".into(), v / batches.max(1) as f64);
        }
    }
    prog_bar.extend(shown_val);
    // At the epoch's end a bare name holds the epoch value (Lightning reads on_step=False).
    st.ctx.callback_metrics.extend(read(&st.train_results.epoch_callback_metrics(), |_| true));
    st.ctx.progress_bar_metrics.extend(prog_bar.clone());
    let completed_here = st.ctx.is_last_batch && !resumed;
    Ok(EpochOutcome { logged: read(&epoch, |r| r.logger), prog_bar, batches, completed_here })
}
