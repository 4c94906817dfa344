//! The prediction loop: eval mode, no autograd, `predict_step` over every batch.

use anyhow::Result;
use tch::Tensor;

use crate::context::Stage;
use crate::loops::fetchers::DataLoader;
use crate::loops::state::LoopState;

pub fn run(st: &mut LoopState<'_>, loader: &DataLoader) -> Result<Vec<Tensor>> {
    let _no_grad = tch::no_grad_guard();
    st.ctx.stage = Stage::Predict;
    st.ctx.training = false;
    let mut out = Vec::with_capacity(loader.num_batches());
    for (idx, batch) in loader.epoch(st.ctx.device)?.enumerate() {
        let batch = batch?;
        out.push(st.module.predict_step(&mut st.ctx, &batch, idx as u64)?);
        st.ctx.logs.clear();
    }
    Ok(out)
}
