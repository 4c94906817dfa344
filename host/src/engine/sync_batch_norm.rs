//! Lightning's `sync_batchnorm=True`: in a DDP run with it, a plugin's `aten::batch_norm`
//! resolves to `lthost::sync_batch_norm` (host/csrc/sync_batch_norm.cpp, torch's
//! SyncBatchNorm over the run's process group, same arguments), so every BatchNorm layer of
//! every SDK syncs its batch statistics across the ranks in training, as Lightning's
//! `convert_sync_batchnorm` turns every `_BatchNorm` into a `SyncBatchNorm`. Set before the
//! plugins resolve any operator; a run without it never sees the substitute.

use std::sync::atomic::{AtomicBool, Ordering};

extern "C" {
    fn lthost_sync_batch_norm_module_training(on: i32);
}

static ON: AtomicBool = AtomicBool::new(false);

/// The operator the host calls for `aten::batch_norm` in a synced run.
pub const OPERATOR: &str = "lthost::sync_batch_norm";

/// Turns the substitution on (or off) for this process.
pub fn enable(on: bool) {
    ON.store(on, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    ON.load(Ordering::SeqCst)
}

/// The module's train mode (Lightning's `model.train()`): the operator syncs only then, as
/// torch's SyncBatchNorm (`need_sync = bn_training and self.training`), so an eval-mode layer
/// without running statistics normalises with its own rank's batch.
pub fn set_module_training(on: bool) {
    // SAFETY: stores a flag.
    unsafe { lthost_sync_batch_norm_module_training(i32::from(on)) }
}

/// The host operator that stands for `qualified` now, if any.
pub fn substitute(qualified: &str) -> Option<&'static str> {
    (qualified == "aten::batch_norm" && enabled()).then_some(OPERATOR)
}
