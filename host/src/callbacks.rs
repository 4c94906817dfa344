//! Callbacks: host-side objects called at every hook, before the module (Lightning's
//! order). Built-ins: the progress bar and the model summary.

pub mod early_stopping;
pub mod model_checkpoint;
pub mod model_summary;
pub mod progress_bar;

use std::collections::BTreeMap;

use crate::context::Stage;
use crate::hooks::Hook;
pub use progress_bar::ProgressBar;

/// What a callback sees at a hook.
#[derive(Debug, Clone, Copy)]
pub struct HookInfo<'a> {
    pub stage: Stage,
    pub batch_idx: Option<u64>,
    pub current_epoch: u64,
    pub global_step: u64,
    /// Lightning's `trainer.callback_metrics`.
    pub callback_metrics: &'a BTreeMap<String, f64>,
}

/// What a callback asks of the trainer after a hook.
#[derive(Debug, Default, Clone)]
pub struct CallbackAction {
    /// Stop the run (honoured once min_epochs/min_steps are met), with a reason.
    pub stop: Option<String>,
    /// Values to log from this hook.
    pub logs: Vec<(String, f64)>,
}

/// Lightning's Callback: one method, called for every callback hook with its name.
pub trait Callback {
    fn name(&self) -> &str;
    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> anyhow::Result<CallbackAction>;
    /// State kept in checkpoints under the callback's name (Lightning's `state_dict`).
    fn state(&mut self) -> Option<serde_json::Value> {
        None
    }
    fn load_state(&mut self, _state: &serde_json::Value) -> anyhow::Result<()> {
        Ok(())
    }
}
