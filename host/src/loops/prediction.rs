//! The prediction loop: eval mode, no autograd, `predict_step` over the batches with
//! Lightning's predict hooks.

use anyhow::Result;
use tch::Tensor;

use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::hooks::Hook;
use crate::loops::sequential;
use crate::loops::state::LoopState;

/// One batch's prediction: which DataLoader (when the split has several) and batch made it.
pub struct Prediction {
    pub dataloader_idx: Option<u32>,
    pub batch_idx: u64,
    pub tensor: Tensor,
}

/// Runs `predict_step` over each of `loaders` in turn (its first `batches[i]` batches),
/// handing each prediction to `sink` as it comes (the loop keeps none).
pub fn run(
    st: &mut LoopState<'_>,
    loaders: &[DataLoader],
    batches: &[usize],
    sink: &mut dyn FnMut(Prediction) -> Result<()>,
) -> Result<()> {
    let _grad_off = crate::engine::torch_ext::eval_guard(st.cfg.inference_mode);
    st.ctx.stage = Stage::Predict;
    st.ctx.set_training(false);
    st.hook(Hook::OnPredictModelEval, None)?;
    let first = sequential::first_with_batches(batches);
    st.bar.on_eval_start(
        &format!("Predicting DataLoader {first}"),
        batches.get(first).copied().unwrap_or(0),
        false,
        false,
    );
    st.loops.predict_loop.batch_progress.reset_current();
    st.hook(Hook::OnPredictStart, None)?;
    st.hook(Hook::OnPredictEpochStart, None)?;
    let title = |dl| format!("Predicting DataLoader {dl}");
    sequential::for_each(st, loaders, batches, title, |st, _, loader, n| run_dataloader(st, loader, n, sink))?;
    st.hook(Hook::OnPredictEpochEnd, None)?;
    st.bar.on_eval_end(&Default::default());
    st.hook(Hook::OnPredictEnd, None)?;
    Ok(())
}

fn run_dataloader(
    st: &mut LoopState<'_>,
    loader: &DataLoader,
    n: usize,
    sink: &mut dyn FnMut(Prediction) -> Result<()>,
) -> Result<()> {
    for (idx, batch) in loader.epoch_from(st.ctx.device, None, 0, st.ctx.current_epoch)?.take(n).enumerate() {
        let i = Some(idx as u64);
        let batch = batch?;
        // Lightning's `convert_input` (a true precision's dtype), before the transfer hooks.
        let batch = st.ctx.precision.convert_input(batch)?;
        // The batch-transfer hooks see this batch (and a Lightning file may replace it there).
        st.ctx.batch = batch.iter().map(tch::Tensor::shallow_clone).collect();
        st.hook(Hook::OnBeforeBatchTransfer, i)?;
        st.hook(Hook::OnAfterBatchTransfer, i)?;
        st.loops.predict_loop.batch_progress.increment_ready();
        st.loops.predict_loop.batch_progress.increment_started();
        st.batch_size = batch.first().map(|t| t.size()[0]);
        st.hook(Hook::OnPredictBatchStart, i)?;
        st.ctx.current_hook = Some(Hook::PredictStep);
        let forward = st.ctx.precision.forward_context(st.ctx.device);
        let pred = st.module.predict_step(&mut st.ctx, &batch, idx as u64);
        drop(forward);
        st.ctx.current_hook = None;
        sink(Prediction { dataloader_idx: st.ctx.dataloader_idx, batch_idx: idx as u64, tensor: pred? })?;
        st.loops.predict_loop.batch_progress.increment_processed();
        st.hook(Hook::OnPredictBatchEnd, i)?;
        st.ctx.batch.clear();
        st.bar.on_eval_batch_end();
        st.loops.predict_loop.batch_progress.increment_completed();
    }
    Ok(())
}
