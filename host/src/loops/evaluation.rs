//! The evaluation loop (validation, test, sanity check): eval mode, no autograd, the
//! module's step over the batches with Lightning's hooks around it, then the epoch metrics.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::connectors::logger::{read, ResultCollection};
use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::hooks::Hook;
use crate::loops::state::LoopState;
use crate::loops::state_dict::Stateful;
use crate::progress::Progress;

/// Lightning's `_EvaluationLoop` state: its batches' progress (`current`: the latest run's;
/// `total`: every run's, for fit's validation loop those of the current epoch, the sanity
/// check's not counted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvaluationLoop {
    pub batch_progress: Progress,
}

impl Stateful for EvaluationLoop {
    fn trackers(&self) -> Vec<(&'static str, &Progress)> {
        vec![("batch_progress", &self.batch_progress)]
    }
    fn trackers_mut(&mut self) -> Vec<(&'static str, &mut Progress)> {
        vec![("batch_progress", &mut self.batch_progress)]
    }
}

#[derive(Debug, Default, Clone)]
pub struct EvalMetrics {
    /// Everything logged: the epoch values and the last batch's step values, `logger=False`
    /// ones included.
    pub all: BTreeMap<String, f64>,
    /// What goes to the loggers: Lightning's `trainer.validate`/`test` results, and the table
    /// `lthost validate`/`test` prints.
    pub logged: BTreeMap<String, f64>,
    /// What the progress bar shows.
    pub prog_bar: BTreeMap<String, f64>,
    pub batches: usize,
}

struct StageHooks {
    model_eval: Hook,
    model_train: Option<Hook>,
    start: Hook,
    end: Hook,
    epoch_start: Hook,
    epoch_end: Hook,
    batch_start: Hook,
    batch_end: Hook,
    step: Hook,
}

fn hooks_for(stage: Stage) -> StageHooks {
    if stage == Stage::Test {
        StageHooks {
            model_eval: Hook::OnTestModelEval,
            model_train: Some(Hook::OnTestModelTrain),
            start: Hook::OnTestStart,
            end: Hook::OnTestEnd,
            epoch_start: Hook::OnTestEpochStart,
            epoch_end: Hook::OnTestEpochEnd,
            batch_start: Hook::OnTestBatchStart,
            batch_end: Hook::OnTestBatchEnd,
            step: Hook::TestStep,
        }
    } else {
        StageHooks {
            model_eval: Hook::OnValidationModelEval,
            model_train: Some(Hook::OnValidationModelTrain),
            start: Hook::OnValidationStart,
            end: Hook::OnValidationEnd,
            epoch_start: Hook::OnValidationEpochStart,
            epoch_end: Hook::OnValidationEpochEnd,
            batch_start: Hook::OnValidationBatchStart,
            batch_end: Hook::OnValidationBatchEnd,
            step: Hook::ValidationStep,
        }
    }
}

/// Where an evaluation run happens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum During {
    /// Its own (validate, test, the sanity check).
    Own,
    /// Inside fit after training batches; `zero_grad`: the batch ended an accumulation window,
    /// so Lightning zeroes the grads first (`on_validation_model_zero_grad`).
    Fit { zero_grad: bool },
}

/// Runs `stage` over the first `batches` batches of `loader`, `during` its own run or fit. `log_step`: the
/// step its epoch values are logged at, before `on_*_end` as in Lightning (None: the sanity
/// check, which logs nothing). Each step's values logged with on_step get a row of their own.
pub fn run(
    st: &mut LoopState<'_>,
    loader: &DataLoader,
    stage: Stage,
    batches: usize,
    during: During,
    log_step: Option<u64>,
) -> Result<EvalMetrics> {
    let _grad_off = crate::engine::torch_ext::eval_guard(st.cfg.inference_mode);
    let h = hooks_for(stage);
    let (was_training, was_stage) = (st.ctx.training, st.ctx.stage);
    st.ctx.stage = stage;
    st.ctx.training = false;
    let mut results = ResultCollection::default();
    let mut last_bs = 1;
    let after_training = matches!(during, During::Fit { .. });
    if during == (During::Fit { zero_grad: true }) {
        st.hook(Hook::OnValidationModelZeroGrad, None)?;
    }
    st.hook(h.model_eval, None)?;
    st.eval_loop(stage).batch_progress.reset_current();
    let title = match stage {
        Stage::SanityCheck => "Sanity Checking DataLoader 0",
        Stage::Test => "Testing DataLoader 0",
        _ => "Validation DataLoader 0",
    };
    st.bar.on_eval_start(title, batches, after_training, stage == Stage::SanityCheck);
    st.hook(h.start, None)?;
    st.hook(h.epoch_start, None)?;
    if stage == Stage::Validate {
        st.val_has_run = false;
    }
    results.add(std::mem::take(&mut st.ctx.logs), last_bs)?;
    for (idx, batch) in loader.epoch_from(st.ctx.device, None, 0, st.ctx.current_epoch)?.take(batches).enumerate() {
        let i = Some(idx as u64);
        if stage == Stage::Validate {
            crate::fault::point("val-batch", || format!("validation batch {idx}"));
        }
        let batch = batch?;
        // The batch-transfer hooks see this batch (and a Lightning file may replace it there).
        st.ctx.batch = batch.iter().map(tch::Tensor::shallow_clone).collect();
        st.hook(Hook::OnBeforeBatchTransfer, i)?;
        st.hook(Hook::OnAfterBatchTransfer, i)?;
        last_bs = batch.first().map(|t| t.size()[0]).unwrap_or(1);
        st.eval_loop(stage).batch_progress.increment_ready();
        st.eval_loop(stage).batch_progress.increment_started();
        st.batch_size = Some(last_bs);
        st.hook(h.batch_start, i)?;
        results.clear_step();
        st.ctx.current_hook = Some(h.step);
        let out = match stage {
            Stage::Test => st.module.test_step(&mut st.ctx, &batch, idx as u64),
            _ => st.module.validation_step(&mut st.ctx, &batch, idx as u64),
        };
        st.ctx.current_hook = None;
        out?;
        st.eval_loop(stage).batch_progress.increment_processed();
        st.hook(h.batch_end, i)?;
        st.ctx.batch.clear();
        results.add(std::mem::take(&mut st.ctx.logs), last_bs)?;
        if log_step.is_some() {
            // Read (a device sync per value) only when a logger or a callback plugin sees it.
            if st.logger.is_some() || !st.callbacks.is_empty() {
                let step = read(&results.step_metrics(), |r| r.logger);
                st.log_row(&step, st.eval_log_steps, false)?;
            }
            st.eval_log_steps += 1;
        }
        st.bar.on_eval_batch_end();
        st.eval_loop(stage).batch_progress.increment_completed();
        if stage == Stage::Validate {
            st.val_has_run = true;
        }
    }
    // Lightning's callback_metrics are computed when read, its epoch's end reached before the
    // epoch-end hooks: they hold this run's epoch values there.
    st.callback_metrics.extend(read(&results.epoch_callback_metrics(), |_| true));
    st.logged_metrics.extend(read(&results.epoch_metrics(), |r| r.logger));
    st.hook(h.epoch_end, None)?;
    results.add(std::mem::take(&mut st.ctx.logs), last_bs)?;
    let mut metrics = results.epoch_metrics();
    metrics.extend(results.step_metrics());
    let out = EvalMetrics {
        all: read(&metrics, |_| true),
        logged: read(&results.epoch_metrics(), |r| r.logger),
        prog_bar: read(&metrics, |r| r.prog_bar),
        batches,
    };
    // Lightning's callback_metrics after an evaluation run: its epoch values only (a step
    // value of the last batch is not one), forked ones under their bare name too (a sanity
    // run's until the sanity check ends).
    st.callback_metrics.extend(read(&results.epoch_callback_metrics(), |_| true));
    st.progress_bar_metrics.extend(out.prog_bar.clone());
    st.bar.on_eval_end(&out.prog_bar);
    if let Some(step) = log_step {
        st.log_metrics(&out.logged, step)?;
    }
    st.hook(h.end, None)?;
    if let Some(t) = h.model_train {
        st.hook(t, None)?;
    }
    st.ctx.training = was_training;
    st.ctx.stage = was_stage;
    Ok(out)
}

/// The sanity check: a short validation run before training whose results are discarded.
pub fn sanity_check(st: &mut LoopState<'_>, loader: &DataLoader) -> Result<()> {
    let steps = st.limits.sanity_steps;
    if steps == 0 {
        return Ok(());
    }
    // Lightning's `reset_metrics` before and after: the sanity run's values are seen by its
    // own hooks only.
    st.clear_metrics();
    st.hook(Hook::OnSanityCheckStart, None)?;
    run(st, loader, Stage::SanityCheck, steps, During::Own, None)?;
    st.hook(Hook::OnSanityCheckEnd, None)?;
    st.clear_metrics();
    // Lightning's `_reset_progress(val_loop)`: the sanity check's batches are not counted.
    st.loops.fit_loop.epoch_loop.val_loop = EvaluationLoop::default();
    Ok(())
}
