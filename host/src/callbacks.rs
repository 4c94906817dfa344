//! Callbacks: host-side objects called at every hook, before the module (Lightning's
//! order). Built-ins: the progress bar, the model summary, LearningRateMonitor,
//! ThroughputMonitor, DeviceStatsMonitor, GradientAccumulationScheduler and the Timer
//! (EarlyStopping and ModelCheckpoint are driven by the loops at Lightning's points).

pub mod batch_size_finder;
pub mod device_stats_monitor;
pub mod early_stopping;
pub mod grad_accumulation;
pub mod lr_finder;
pub mod lr_monitor;
pub mod model_checkpoint;
pub mod model_summary;
pub mod progress_bar;
pub mod py_format;
pub mod state_key;
pub mod throughput_monitor;
pub mod timer;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::context::Stage;
use crate::engine::optim::OptimizerSet;
use crate::hooks::Hook;
pub use progress_bar::ProgressBar;

/// What a callback sees at a hook.
#[derive(Clone, Copy)]
pub struct HookInfo<'a> {
    pub stage: Stage,
    pub batch_idx: Option<u64>,
    /// The batch's DataLoader when its split has several (Lightning's `dataloader_idx`).
    pub dataloader_idx: Option<u32>,
    pub current_epoch: u64,
    pub global_step: u64,
    /// Lightning's `trainer.callback_metrics`.
    pub callback_metrics: &'a BTreeMap<String, f64>,
    /// Lightning's `trainer.logged_metrics`.
    pub logged_metrics: &'a BTreeMap<String, f64>,
    /// Lightning's `_batches_that_stepped`: the step logged training values are written at.
    pub batches_that_stepped: u64,
    /// Batches started so far in this loop (Lightning's `batch_progress.total.ready`).
    pub total_batches: u64,
    /// The current batch's size (batch hooks).
    pub batch_size: Option<i64>,
    /// Lightning's `should_update_logs`: this step's values are due at the loggers.
    pub should_update_logs: bool,
    /// An optimizer step ends this batch (no accumulation pending).
    pub stepping: bool,
    /// The optimizers (learning rates, momenta, gradients), once configured.
    pub optim: Option<&'a OptimizerSet>,
    /// Whether the run has a logger.
    pub has_logger: bool,
    pub device: tch::Device,
    /// The training_step's loss (`on_train_batch_end`).
    pub loss: Option<&'a tch::Tensor>,
}

/// What a callback asks of the trainer after a hook.
#[derive(Debug, Default, Clone)]
pub struct CallbackAction {
    /// Stop the run (honoured once min_epochs/min_steps are met), with a reason.
    pub stop: Option<String>,
    /// Values to log from this hook (`self.log`: Lightning's rules for the hook apply).
    pub logs: Vec<(String, f64)>,
    /// Values written straight to the loggers (Lightning's `logger.log_metrics`), at
    /// `metrics_step` or else `batches_that_stepped`; also into `callback_metrics` when
    /// `metrics_are_callback_metrics` (LearningRateMonitor's values are, device stats not).
    pub metrics: Vec<(String, f64)>,
    pub metrics_step: Option<u64>,
    pub metrics_are_callback_metrics: bool,
    /// Sets the Trainer's `accumulate_grad_batches` (GradientAccumulationScheduler).
    pub accumulate_grad_batches: Option<u64>,
}

/// Lightning's Callback: one method, called for every callback hook with its name.
pub trait Callback {
    fn name(&self) -> &str;
    /// The key its state has in a checkpoint. Built-ins use their name (as Lightning);
    /// callback plugins are namespaced (`plugin:<name>`) so that no plugin's file name can
    /// take a built-in's key.
    fn state_key(&self) -> String {
        self.name().to_string()
    }
    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> anyhow::Result<CallbackAction>;
    /// A run restored inside an epoch continues it without calling `on_train_epoch_start`
    /// again (Lightning's restart): a callback whose epoch start sets the loop up (the
    /// accumulation factor) sets it up here instead.
    fn on_train_epoch_resumed(&mut self, _info: &HookInfo<'_>) -> anyhow::Result<CallbackAction> {
        Ok(CallbackAction::default())
    }
    /// State kept in checkpoints under the callback's name (Lightning's `state_dict`).
    fn state(&mut self) -> anyhow::Result<Option<serde_json::Value>> {
        Ok(None)
    }
    fn load_state(&mut self, _state: &serde_json::Value) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The built-in callbacks a run file turns on (`[callbacks.*]` tables), beside
/// `[checkpoint]` and `[early_stopping]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuiltinCallbacks {
    pub lr_monitor: Option<lr_monitor::LrMonitorConfig>,
    pub throughput_monitor: Option<throughput_monitor::ThroughputConfig>,
    pub device_stats_monitor: Option<device_stats_monitor::DeviceStatsConfig>,
    pub gradient_accumulation_scheduler: Option<grad_accumulation::AccumulationConfig>,
    /// Lightning's `BatchSizeFinder` callback: a batch-size search at the fit's start (run by
    /// the fit itself, `tuner/scale_batch_size.rs`, not a hook callback).
    pub batch_size_finder: Option<batch_size_finder::BatchSizeConfig>,
    /// Lightning's `LearningRateFinder` callback: a learning-rate search at the fit's start
    /// (run by the fit itself, `tuner/lr_find_in_fit.rs`).
    pub learning_rate_finder: Option<lr_finder::LrFindConfig>,
    /// Callback plugins (.wasm), relative to the run file.
    pub plugins: Vec<std::path::PathBuf>,
}

impl BuiltinCallbacks {
    /// Builds the configured built-ins, in Lightning's order of the list.
    pub fn build(&self) -> anyhow::Result<Vec<Box<dyn Callback>>> {
        let mut out: Vec<Box<dyn Callback>> = Vec::new();
        if let Some(c) = &self.gradient_accumulation_scheduler {
            out.push(Box::new(grad_accumulation::GradientAccumulationScheduler::new(c)?));
        }
        if let Some(c) = &self.lr_monitor {
            out.push(Box::new(lr_monitor::LearningRateMonitor::new(c.clone())?));
        }
        if let Some(c) = &self.throughput_monitor {
            out.push(Box::new(throughput_monitor::ThroughputMonitor::new(c.clone())?));
        }
        if let Some(c) = &self.device_stats_monitor {
            out.push(Box::new(device_stats_monitor::DeviceStatsMonitor::new(c.clone())));
        }
        if let Some(c) = &self.batch_size_finder {
            c.validate()?;
        }
        if let Some(c) = &self.learning_rate_finder {
            c.validate()?;
        }
        Ok(out)
    }
}
