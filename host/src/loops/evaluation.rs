//! The evaluation loop (validation, test, sanity check): eval mode, no autograd, the
//! module's step over the batches with Lightning's hooks around it, then the epoch metrics.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::connectors::logger::{read, ResultCollection};
use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::hooks::Hook;
use crate::loops::sequential;
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
    /// Everything logged: the epoch values and each metric's latest step value, `logger=False`
    /// ones included.
    pub all: BTreeMap<String, f64>,
    /// What goes to the loggers: every DataLoader's epoch values, one row.
    pub logged: BTreeMap<String, f64>,
    /// Lightning's `trainer.validate`/`test` results, one per DataLoader (what was logged
    /// under it, and what the epoch hooks logged): the table `lthost validate`/`test` prints.
    pub per_dataloader: Vec<BTreeMap<String, f64>>,
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

/// Runs `stage` over each of `loaders` in turn (its first `batches[i]` batches), `during` its
/// own run or fit. `log_step`: the step its epoch values are logged at, before `on_*_end` as
/// in Lightning (None: the sanity check, which logs nothing). Each step's values logged with
/// on_step get a row of their own. With several DataLoaders, the steps and batch hooks see
/// `dataloader_idx`, and what is logged there is named and reduced per DataLoader
/// (`val_loss/dataloader_idx_1`), Lightning's sequential CombinedLoader.
pub fn run(
    st: &mut LoopState<'_>,
    loaders: &[DataLoader],
    stage: Stage,
    batches: &[usize],
    during: During,
    log_step: Option<u64>,
) -> Result<EvalMetrics> {
    let _grad_off = crate::engine::torch_ext::eval_guard(st.cfg.inference_mode);
    let h = hooks_for(stage);
    let (was_training, was_stage) = (st.ctx.training, st.ctx.stage);
    st.ctx.stage = stage;
    st.ctx.set_training(false);
    let mut results = ResultCollection::synced(st.ddp.as_ref().map(crate::distributed::Ddp::syncer));
    let mut last_bs = 1;
    let after_training = matches!(during, During::Fit { .. });
    if during == (During::Fit { zero_grad: true }) {
        st.hook(Hook::OnValidationModelZeroGrad, None)?;
    }
    st.hook(h.model_eval, None)?;
    st.eval_loop(stage).batch_progress.reset_current();
    let title = |i: usize| match stage {
        Stage::SanityCheck => format!("Sanity Checking DataLoader {i}"),
        Stage::Test => format!("Testing DataLoader {i}"),
        _ => format!("Validation DataLoader {i}"),
    };
    let first = sequential::first_with_batches(batches);
    st.bar.on_eval_start(
        &title(first),
        batches.get(first).copied().unwrap_or(0),
        after_training,
        stage == Stage::SanityCheck,
    );
    st.hook(h.start, None)?;
    st.hook(h.epoch_start, None)?;
    if stage == Stage::Validate {
        st.val_has_run = false;
    }
    results.add(std::mem::take(&mut st.ctx.logs), last_bs)?;
    let several = loaders.len() > 1;
    let mut per_dataloader = vec![BTreeMap::new(); loaders.len()];
    // Each DataLoader's last step values for the progress bar (Lightning keeps them all: their
    // names differ by the suffix).
    let mut prog_bar = BTreeMap::new();
    sequential::for_each(st, loaders, batches, title, |st, dl, loader, n| {
        run_dataloader(st, loader, stage, n, &h, &mut results, &mut last_bs, dl, log_step)?;
        if several {
            // Lightning's `_store_dataloader_outputs`: this DataLoader's epoch values reach
            // callback_metrics and logged_metrics when the next one starts (not in a sanity
            // check). One DataLoader's are read with the epoch's below.
            let of = Some(dl as u32);
            let logged = read(&results.epoch_metrics_of(of), |r| r.logger);
            if log_step.is_some() {
                st.ctx.callback_metrics.extend(read(&results.epoch_callback_metrics_of(of), |_| true));
                st.ctx.logged_metrics.extend(logged.clone());
            }
            per_dataloader[dl] = logged;
            // This DataLoader's (step values persist: the earlier ones were read already).
            prog_bar.extend(read(&results.step_metrics_of(of), |r| r.prog_bar));
        }
        Ok(())
    })?;
    // Lightning's callback_metrics are computed when read, its epoch's end reached before the
    // epoch-end hooks: they hold this run's epoch values there (those logged outside any
    // DataLoader: each DataLoader's came in as it ended).
    st.ctx.callback_metrics.extend(read(&results.epoch_callback_metrics_of(None), |_| true));
    st.ctx.logged_metrics.extend(read(&results.epoch_metrics_of(None), |r| r.logger));
    st.hook(h.epoch_end, None)?;
    // Lightning drops the batch at each batch's end: what an epoch hook logs weighs 1.
    results.add(std::mem::take(&mut st.ctx.logs), 1)?;
    // What was logged outside any DataLoader (the epoch hooks) goes with each one's results.
    let outside = read(&results.epoch_metrics_of(None), |r| r.logger);
    // Lightning's `on_epoch_end` after the epoch-end hooks: logged_metrics take them, in a sanity
    // check too (only the loggers skip its values).
    st.ctx.logged_metrics.extend(outside.clone());
    if several {
        for (k, v) in outside {
            // A name that carries a DataLoader's suffix itself (an SDK's torchmetrics object
            // computed at the epoch's end) is that DataLoader's.
            match loader_of(&k).filter(|&j| j < per_dataloader.len()) {
                Some(j) => {
                    per_dataloader[j].insert(k, v);
                }
                None => per_dataloader.iter_mut().for_each(|m| {
                    m.insert(k.clone(), v);
                }),
            }
        }
    } else {
        per_dataloader = vec![outside];
    }
    let mut metrics = results.epoch_metrics();
    metrics.extend(results.step_metrics());
    prog_bar.extend(read(&metrics, |r| r.prog_bar));
    let out = EvalMetrics {
        all: read(&metrics, |_| true),
        logged: read(&results.epoch_metrics(), |r| r.logger),
        per_dataloader,
        prog_bar,
        batches: batches.iter().fold(0usize, |a, &b| a.saturating_add(b)),
    };
    // Lightning's callback_metrics after an evaluation run: its epoch values only (a step
    // value of the last batch is not one), forked ones under their bare name too (a sanity
    // run's until the sanity check ends).
    st.ctx.callback_metrics.extend(read(&results.epoch_callback_metrics_of(None), |_| true));
    st.ctx.progress_bar_metrics.extend(out.prog_bar.clone());
    st.bar.on_eval_end(&out.prog_bar);
    if let Some(step) = log_step {
        st.log_metrics(&out.logged, step)?;
    }
    st.hook(h.end, None)?;
    if let Some(t) = h.model_train {
        st.hook(t, None)?;
    }
    st.ctx.set_training(was_training);
    st.ctx.stage = was_stage;
    Ok(out)
}

/// The first `n` batches of DataLoader `dl`, with the batch hooks around each step.
#[allow(clippy::too_many_arguments)]
fn run_dataloader(
    st: &mut LoopState<'_>,
    loader: &DataLoader,
    stage: Stage,
    n: usize,
    h: &StageHooks,
    results: &mut ResultCollection,
    last_bs: &mut i64,
    dl: usize,
    log_step: Option<u64>,
) -> Result<()> {
    // Lightning's `_seen_batches_per_dataloader`: each DataLoader's rows count on their own.
    if st.eval_log_steps.len() <= dl {
        st.eval_log_steps.resize(dl + 1, 0);
    }
    for (idx, batch) in loader.epoch_from(st.ctx.device, None, 0, st.ctx.current_epoch)?.take(n).enumerate() {
        let i = Some(idx as u64);
        if stage == Stage::Validate {
            crate::fault::point("val-batch", || format!("validation batch {idx}"));
        }
        let batch = batch?;
        // Lightning's `convert_input` (a true precision's dtype), before the transfer hooks.
        let batch = st.ctx.precision.convert_input(batch)?;
        // The batch-transfer hooks see this batch (and a Lightning file may replace it there).
        st.ctx.batch = batch.iter().map(tch::Tensor::shallow_clone).collect();
        st.hook(Hook::OnBeforeBatchTransfer, i)?;
        st.hook(Hook::OnAfterBatchTransfer, i)?;
        *last_bs = batch.first().map(|t| t.size()[0]).unwrap_or(1);
        st.eval_loop(stage).batch_progress.increment_ready();
        st.eval_loop(stage).batch_progress.increment_started();
        st.batch_size = Some(*last_bs);
        st.hook(h.batch_start, i)?;
        st.ctx.current_hook = Some(h.step);
        // DDP (inside fit): the step goes through DistributedDataParallel's forward, without
        // gradients (rank 0's buffers, the next forward's buffer sync turned off).
        if let Some(d) = st.ddp.as_mut() {
            d.pre_forward(false, true)?;
        }
        let forward = st.ctx.precision.forward_context(st.ctx.device);
        let out = match stage {
            Stage::Test => st.module.test_step(&mut st.ctx, &batch, idx as u64),
            _ => st.module.validation_step(&mut st.ctx, &batch, idx as u64),
        };
        drop(forward);
        st.ctx.current_hook = None;
        out?;
        if let Some(d) = st.ddp.as_mut() {
            d.post_forward(false, true, &[])?;
        }
        st.eval_loop(stage).batch_progress.increment_processed();
        st.hook(h.batch_end, i)?;
        st.ctx.batch.clear();
        results.add(std::mem::take(&mut st.ctx.logs), *last_bs)?;
        // Read (a device sync per value) only when a logger or a callback sees it.
        let rows = log_step.is_some() && st.logger.is_some();
        if rows || st.has_callbacks() {
            // Every value this DataLoader's batches logged so far in the run, each its latest
            // (Lightning's forward cache: a value logged at an earlier batch stays in the row).
            let step = read(&results.step_metrics_of(st.ctx.dataloader_idx), |r| r.logger);
            // Lightning's `on_batch_end`: logged_metrics hold the batch's values (a sanity
            // check's too), whether or not a row is written (`log_row` keeps them).
            match log_step {
                Some(_) => st.log_row(&step, st.eval_log_steps.get(dl).copied().unwrap_or(0), false)?,
                None => st.ctx.logged_metrics.extend(step),
            }
        }
        if let (Some(_), Some(seen)) = (log_step, st.eval_log_steps.get_mut(dl)) {
            *seen += 1;
        }
        st.bar.on_eval_batch_end();
        st.eval_loop(stage).batch_progress.increment_completed();
        if stage == Stage::Validate {
            st.val_has_run = true;
        }
    }
    Ok(())
}

/// The DataLoader a name's `/dataloader_idx_<i>` suffix names, if it has one.
fn loader_of(name: &str) -> Option<usize> {
    name.rsplit_once(crate::context::DATALOADER_SUFFIX)?.1.parse().ok()
}

/// Lightning's results table (`_print_results`): a row per metric, its DataLoader suffix
/// taken off, a column per DataLoader (blank where one has no such value); empty when
/// nothing was logged.
pub fn results_table(title: &str, per_dataloader: &[BTreeMap<String, f64>]) -> String {
    let bare = |k: &str| k.split(crate::context::DATALOADER_SUFFIX).next().unwrap_or(k).to_string();
    let columns: Vec<BTreeMap<String, f64>> =
        per_dataloader.iter().map(|m| m.iter().map(|(k, v)| (bare(k), *v)).collect()).collect();
    let names: std::collections::BTreeSet<&String> = columns.iter().flat_map(|m| m.keys()).collect();
    if names.is_empty() {
        return String::new();
    }
    let mut out = format!("\n{title:<24}");
    for i in 0..columns.len() {
        out.push_str(&format!(" {:<24}", format!("DataLoader {i}")));
    }
    out = out.trim_end().to_string() + "\n";
    for name in names {
        let mut line = format!("{name:<24}");
        for m in &columns {
            let v = m.get(name).map(|v| v.to_string()).unwrap_or_default();
            line.push_str(&format!(" {v:<24}"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The sanity check: a short validation run before training whose results are discarded.
pub fn sanity_check(st: &mut LoopState<'_>, loaders: &[DataLoader]) -> Result<()> {
    if !st.limits.sanity_checks() {
        return Ok(());
    }
    let steps = st.limits.sanity_steps.clone();
    // Lightning's `reset_metrics` before and after: the sanity run's values are seen by its
    // own hooks only.
    st.clear_metrics();
    st.hook(Hook::OnSanityCheckStart, None)?;
    run(st, loaders, Stage::SanityCheck, &steps, During::Own, None)?;
    st.hook(Hook::OnSanityCheckEnd, None)?;
    st.clear_metrics();
    // Lightning's `_reset_progress(val_loop)`: the sanity check's batches are not counted.
    st.loops.fit_loop.epoch_loop.val_loop = EvaluationLoop::default();
    Ok(())
}
