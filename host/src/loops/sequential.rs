//! Lightning's sequential CombinedLoader: an evaluation or prediction run's DataLoaders one
//! after the other, each with its own progress-bar line and, when there are several, its
//! `dataloader_idx` for the steps and batch hooks.

use anyhow::Result;

use crate::data::fetchers::DataLoader;
use crate::loops::state::LoopState;

/// The DataLoader the run's bar starts on: the first with batches.
pub fn first_with_batches(batches: &[usize]) -> usize {
    batches.iter().position(|&b| b > 0).unwrap_or(0)
}

/// Calls `each(st, dl, loader, n)` for every DataLoader with batches (`n` of them), in turn,
/// with `ctx.dataloader_idx` set when there are several, and moves the bar to it (`title`).
/// A DataLoader limited to no batches makes and drops its iterator (its draws: Lightning's
/// `_Sequential` makes one) and is skipped.
pub fn for_each(
    st: &mut LoopState<'_>,
    loaders: &[DataLoader],
    batches: &[usize],
    title: impl Fn(usize) -> String,
    mut each: impl FnMut(&mut LoopState<'_>, usize, &DataLoader, usize) -> Result<()>,
) -> Result<()> {
    let first = first_with_batches(batches);
    let several = loaders.len() > 1;
    for (dl, loader) in loaders.iter().enumerate() {
        let n = batches.get(dl).copied().unwrap_or(0);
        if n == 0 {
            loader.discard_iterator()?;
            continue;
        }
        if dl != first {
            st.bar.on_eval_dataloader(&title(dl), n);
        }
        st.ctx.dataloader_idx = several.then_some(dl as u32);
        let ran = each(st, dl, loader, n);
        st.ctx.dataloader_idx = None;
        ran?;
    }
    Ok(())
}
