//! The prediction loop: eval mode, no autograd, `predict_step` over the batches with
//! Lightning's predict hooks.

use anyhow::Result;
use tch::Tensor;

use crate::context::Stage;
use crate::data::fetchers::DataLoader;
use crate::hooks::Hook;
use crate::loops::state::LoopState;

/// Runs `predict_step` over `batches` batches, handing each prediction to `sink` as it
/// comes (the loop keeps none).
pub fn run(
    st: &mut LoopState<'_>,
    loader: &DataLoader,
    batches: usize,
    sink: &mut dyn FnMut(Tensor) -> Result<()>,
) -> Result<()> {
    let _grad_off = crate::engine::torch_ext::eval_guard(st.cfg.inference_mode);
    st.ctx.stage = Stage::Predict;
    st.ctx.training = false;
    st.hook(Hook::OnPredictModelEval, None)?;
    st.bar.on_eval_start("Predicting DataLoader 0", batches, false, false);
    st.loops.predict_loop.batch_progress.reset_current();
    st.hook(Hook::OnPredictStart, None)?;
    st.hook(Hook::OnPredictEpochStart, None)?;
    for (idx, batch) in loader.epoch_from(st.ctx.device, None, 0, st.ctx.current_epoch)?.take(batches).enumerate() {
        let i = Some(idx as u64);
        let batch = batch?;
        // The batch-transfer hooks see this batch (and a Lightning file may replace it there).
        st.ctx.batch = batch.iter().map(tch::Tensor::shallow_clone).collect();
        st.hook(Hook::OnBeforeBatchTransfer, i)?;
        st.hook(Hook::OnAfterBatchTransfer, i)?;
        st.loops.predict_loop.batch_progress.increment_ready();
        st.loops.predict_loop.batch_progress.increment_started();
        st.batch_size = batch.first().map(|t| t.size()[0]);
        st.hook(Hook::OnPredictBatchStart, i)?;
        st.ctx.current_hook = Some(Hook::PredictStep);
        let pred = st.module.predict_step(&mut st.ctx, &batch, idx as u64);
        st.ctx.current_hook = None;
        sink(pred?)?;
        st.loops.predict_loop.batch_progress.increment_processed();
        st.hook(Hook::OnPredictBatchEnd, i)?;
        st.ctx.batch.clear();
        st.bar.on_eval_batch_end();
        st.loops.predict_loop.batch_progress.increment_completed();
    }
    st.hook(Hook::OnPredictEpochEnd, None)?;
    st.bar.on_eval_end(&Default::default());
    st.hook(Hook::OnPredictEnd, None)?;
    Ok(())
}
