//! The evaluation loop (validation, test, sanity check): eval mode, no autograd, the
//! module's step over every batch, then the epoch-level metrics.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::connectors::logger::{read, ResultCollection};
use crate::context::Stage;
use crate::loops::fetchers::DataLoader;
use crate::loops::state::LoopState;

#[derive(Debug, Default, Clone)]
pub struct EvalMetrics {
    /// Everything logged (for callbacks and the summary).
    pub all: BTreeMap<String, f64>,
    /// What goes to the loggers.
    pub logged: BTreeMap<String, f64>,
    /// What the progress bar shows.
    pub prog_bar: BTreeMap<String, f64>,
}

/// Runs `stage` over at most `max_batches` batches of `loader`.
pub fn run(st: &mut LoopState<'_>, loader: &DataLoader, stage: Stage, max_batches: Option<usize>) -> Result<EvalMetrics> {
    let _no_grad = tch::no_grad_guard();
    let was_training = st.ctx.training;
    st.ctx.stage = stage;
    st.ctx.training = false;
    let mut results = ResultCollection::default();
    let limit = max_batches.unwrap_or(usize::MAX);
    for (idx, batch) in loader.epoch(st.ctx.device)?.take(limit).enumerate() {
        let batch = batch?;
        let bs = batch.first().map(|t| t.size()[0]).unwrap_or(0);
        match stage {
            Stage::Test => st.module.test_step(&mut st.ctx, &batch, idx as u64)?,
            _ => st.module.validation_step(&mut st.ctx, &batch, idx as u64)?,
        }
        let logs = std::mem::take(&mut st.ctx.logs);
        results.add(logs, bs)?;
    }
    st.ctx.training = was_training;
    st.ctx.stage = Stage::Fit;
    let mut metrics = results.epoch_metrics();
    metrics.extend(results.step_metrics());
    Ok(EvalMetrics {
        all: read(&metrics, |_| true),
        logged: read(&metrics, |r| r.logger),
        prog_bar: read(&metrics, |r| r.prog_bar),
    })
}
