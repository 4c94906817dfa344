//! One training epoch: for each batch, `training_step`, automatic optimization, step-level
//! logging every `log_every_n_steps`, the progress bar; then the epoch-level metrics.

use std::collections::BTreeMap;

use anyhow::Result;
use tch::Tensor;

use crate::connectors::logger::{read, ResultCollection};
use crate::context::Stage;
use crate::engine::optim::Optimizer;
use crate::loops::fetchers::DataLoader;
use crate::loops::optimization::automatic;
use crate::loops::state::LoopState;

/// What an epoch leaves for the progress bar and the summary.
pub struct EpochOutcome {
    /// Epoch-level training metrics (logger routing).
    pub logged: BTreeMap<String, f64>,
    /// Everything for the progress bar: prog-bar metrics and the epoch's mean loss.
    pub prog_bar: BTreeMap<String, f64>,
    pub all: BTreeMap<String, f64>,
    pub batches: usize,
}

pub fn run(st: &mut LoopState<'_>, loader: &DataLoader, optimizer: &mut dyn Optimizer) -> Result<EpochOutcome> {
    let params = st.ctx.params.parameters();
    let mut results = ResultCollection::default();
    let mut loss_sum: Option<Tensor> = None;
    let mut batches = 0usize;
    st.batch_progress.reset_current();
    st.bar.on_train_epoch_start(st.ctx.current_epoch, loader.num_batches());
    for (idx, batch) in loader.epoch(st.ctx.device)?.enumerate() {
        st.batch_progress.increment_ready();
        let batch = batch?;
        st.batch_progress.increment_started();
        let bs = batch.first().map(|t| t.size()[0]).unwrap_or(0);
        st.ctx.stage = Stage::Fit;
        st.ctx.training = true;
        let loss = st.module.training_step(&mut st.ctx, &batch, idx as u64)?;
        automatic::check_loss(st.module.name(), &loss)?;
        let logs = std::mem::take(&mut st.ctx.logs);
        results.add(logs, bs)?;
        automatic::step(&params, &loss, optimizer)?;
        let detached = loss.detach().reshape([]);
        loss_sum = Some(match loss_sum {
            Some(s) => s + &detached,
            None => detached.shallow_clone(),
        });
        st.batch_progress.increment_processed();
        st.ctx.global_step += 1;
        batches += 1;

        if st.ctx.global_step % st.cfg.log_every_n_steps.max(1) == 0 {
            let m = read(&results.step_metrics(), |r| r.logger);
            st.log_metrics(&m, st.ctx.global_step - 1)?;
        }
        let shown = if st.bar.wants_refresh() {
            let mut m = read(&results.step_metrics(), |r| r.prog_bar);
            if let Ok(v) = detached.f_double_value(&[]) {
                m.insert("loss".into(), v);
            }
            Some(m)
        } else {
            None
        };
        st.bar.on_train_batch_end(shown.as_ref());
        st.batch_progress.increment_completed();
        if st.cfg.max_steps >= 0 && st.ctx.global_step >= st.cfg.max_steps as u64 {
            st.should_stop = true;
            break;
        }
    }
    let epoch = results.epoch_metrics();
    let mut prog_bar = read(&results.step_metrics(), |r| r.prog_bar);
    prog_bar.extend(read(&epoch, |r| r.prog_bar));
    if let Some(s) = loss_sum {
        if let Ok(v) = s.f_double_value(&[]) {
            prog_bar.insert("loss".into(), v / batches.max(1) as f64);
        }
    }
    let mut all = read(&epoch, |_| true);
    all.extend(read(&results.step_metrics(), |_| true));
    Ok(EpochOutcome { logged: read(&epoch, |r| r.logger), prog_bar, all, batches })
}
