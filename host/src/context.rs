//! What a hook can see and change while it runs: the state dict, the trainer's state, the
//! values it logs. The loops own one [`RunContext`] and lend it to every hook, native or WASM.

use std::path::PathBuf;

use tch::{Device, Tensor};

use crate::engine::optim::OptimizerSet;
use crate::engine::params::ParamStore;
use crate::error::OpError;
use crate::hooks::Hook;

/// Lightning's `RunningStage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    #[default]
    Fit,
    Validate,
    Test,
    Predict,
    SanityCheck,
}

impl Stage {
    /// The Lightning name of the stage, as used in hook names and metric prefixes.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Fit => "fit",
            Stage::Validate => "validate",
            Stage::Test => "test",
            Stage::Predict => "predict",
            Stage::SanityCheck => "sanity_check",
        }
    }
}

/// How an epoch-level value is reduced (Lightning's `reduce_fx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceFx {
    Mean,
    Sum,
    Max,
    Min,
}

/// One `self.log(...)` call, kept as a tensor: nothing is read back here.
#[derive(Debug)]
pub struct LogRecord {
    pub name: String,
    /// The hook that logged it (Lightning's `fx`).
    pub hook: Option<Hook>,
    pub value: Tensor,
    pub prog_bar: bool,
    pub logger: bool,
    pub on_step: bool,
    pub on_epoch: bool,
    pub reduce_fx: ReduceFx,
    pub batch_size: Option<u32>,
    /// The DataLoader it was logged under, when its split has several (Lightning's
    /// `_Metadata.dataloader_idx`, kept whether or not the name carries it).
    pub dataloader_idx: Option<u32>,
    /// Whether the name gets `/dataloader_idx_<i>` (Lightning's `add_dataloader_idx`).
    pub add_dataloader_idx: bool,
    /// Reduced across ranks (Lightning's `sync_dist`).
    pub sync_dist: bool,
}

impl LogRecord {
    /// The name as the results show it: `name` (or its forked `name_step`/`name_epoch`,
    /// `fork`) with the DataLoader's suffix when it gets one (Lightning's `_forked_name`).
    pub fn shown(&self, fork: &str) -> String {
        format!("{}{fork}{}", self.name, dataloader_suffix(self.add_dataloader_idx, self.dataloader_idx))
    }
}

/// Lightning's `DATALOADER_SUFFIX`, before the index.
pub const DATALOADER_SUFFIX: &str = "/dataloader_idx_";

/// `/dataloader_idx_<i>` for a value logged under DataLoader i with `add_dataloader_idx`,
/// else nothing.
pub fn dataloader_suffix(add_dataloader_idx: bool, dataloader_idx: Option<u32>) -> String {
    match (add_dataloader_idx, dataloader_idx) {
        (true, Some(i)) => format!("{DATALOADER_SUFFIX}{i}"),
        _ => String::new(),
    }
}

/// Options as the plugin gave them; `None` takes Lightning's default for the hook.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    pub prog_bar: bool,
    pub logger: bool,
    pub on_step: Option<bool>,
    pub on_epoch: Option<bool>,
    pub reduce_fx: ReduceFx,
    pub batch_size: Option<u32>,
    /// Lightning's `add_dataloader_idx` (true by default).
    pub add_dataloader_idx: bool,
    /// Lightning's `sync_dist`: reduced across the ranks of a distributed run.
    pub sync_dist: bool,
}

pub struct RunContext {
    pub params: ParamStore,
    /// Where the model's tensors live.
    pub device: Device,
    /// The run's precision (Lightning's `trainer.precision`).
    pub precision: crate::precision::Precision,
    /// Where tensors made by the current hook go: the device in model hooks, the CPU in
    /// data hooks (the loader moves batches).
    pub creation_device: Device,
    pub stage: Stage,
    /// Train mode (dropout, batch-norm statistics) versus eval mode: set with
    /// [`RunContext::set_training`].
    pub training: bool,
    pub current_epoch: u64,
    pub global_step: u64,
    pub max_epochs: Option<u64>,
    /// The fit's loop numbers (`trainer.fit-numbers`), set once its data is.
    pub fit_numbers: FitNumbers,
    /// Whether the training batch being processed is its epoch's last.
    pub is_last_batch: bool,
    /// The batch being processed (shallow copies), for the batch hooks; empty between batches.
    pub batch: Vec<Tensor>,
    /// The values logged by the hook that is running; the loop drains them.
    pub logs: Vec<LogRecord>,
    /// The read-only directory the plugin was granted, if any.
    pub data_dir: Option<PathBuf>,
    /// The hook running now (decides where `self.log` is allowed and its defaults).
    pub current_hook: Option<Hook>,
    /// In automatic optimization, the plugin-run optimizer whose step is running: Lightning's
    /// closure may re-run training_step, zero that optimizer's gradients and backward.
    pub closure_of: Option<usize>,
    /// Optimizers and schedulers, once `configure_optimizers` ran.
    pub optim: Option<OptimizerSet>,
    /// Every metric name logged so far in the run (bounded: [`MAX_METRIC_NAMES`]).
    pub metric_names: std::collections::BTreeSet<String>,
    /// Lightning's `dataloader_idx` of the evaluation batch being processed, when its split
    /// has several DataLoaders (`_current_dataloader_idx`); None otherwise.
    pub dataloader_idx: Option<u32>,
    /// This process's place in a distributed run (None: one process, no distributed
    /// strategy).
    pub world: Option<crate::distributed::World>,
    /// Lightning's `trainer.callback_metrics`, `logged_metrics` and `progress_bar_metrics`
    /// (the loops fill them; plugins read them through `trainer.metrics`).
    pub callback_metrics: std::collections::BTreeMap<String, f64>,
    pub logged_metrics: std::collections::BTreeMap<String, f64>,
    pub progress_bar_metrics: std::collections::BTreeMap<String, f64>,
    /// Lightning's `trainer.should_stop`: a stop requested, by the loops (mirrored before each
    /// plugin hook) or by a plugin (`trainer.set-should-stop`).
    pub should_stop: bool,
    /// What a plugin set `trainer.should_stop` to in the hook that ran (the loops take it).
    pub stop_set: Option<bool>,
}

/// A fit's loop numbers as Lightning's Trainer exposes them (`trainer.num_training_batches`,
/// ...): what plugins compute `estimated_stepping_batches` from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitNumbers {
    pub max_steps: Option<u64>,
    /// None: inf (a stream of unknown length, not limited by an integer).
    pub num_training_batches: Option<u64>,
    /// Per validation DataLoader (None: inf).
    pub num_val_batches: Vec<Option<u64>>,
    pub accumulate_grad_batches: u64,
    pub log_every_n_steps: u64,
    pub check_val_every_n_epoch: Option<u64>,
}

/// The longest metric name, in bytes.
pub const MAX_METRIC_NAME: usize = 256;
/// The most distinct metric names one run may log (each is a CSV column).
pub const MAX_METRIC_NAMES: usize = 1024;
/// The most values one hook call may log (the loop drains them after each hook).
pub const MAX_LOGS_PER_HOOK: usize = 65_536;

/// Refuses a metric name that would corrupt a log file or a terminal line: empty, longer
/// than [`MAX_METRIC_NAME`], or holding a control character (`\n`, `\r`, ANSI escapes),
/// `,` or `"`.
pub fn check_metric_name(name: &str) -> Result<(), OpError> {
    if name.is_empty() || name.len() > MAX_METRIC_NAME || name.chars().any(|c| c.is_control() || c == ',' || c == '"') {
        let shown: String = name.chars().take(64).collect();
        return Err(OpError::new("log", format!("invalid metric name {shown:?}: names are 1 to {MAX_METRIC_NAME} bytes without control characters, commas or quotes")));
    }
    Ok(())
}

impl Default for RunContext {
    fn default() -> Self {
        RunContext {
            params: ParamStore::default(),
            device: Device::Cpu,
            precision: Default::default(),
            creation_device: Device::Cpu,
            stage: Stage::Fit,
            training: false,
            current_epoch: 0,
            global_step: 0,
            max_epochs: None,
            fit_numbers: FitNumbers::default(),
            is_last_batch: false,
            batch: Vec::new(),
            logs: Vec::new(),
            data_dir: None,
            current_hook: None,
            closure_of: None,
            optim: None,
            metric_names: Default::default(),
            dataloader_idx: None,
            world: None,
            callback_metrics: Default::default(),
            logged_metrics: Default::default(),
            progress_bar_metrics: Default::default(),
            should_stop: false,
            stop_set: None,
        }
    }
}

/// The part of a [`RunContext`] that `self.log` writes: the running hook (its rules), the values
/// it logged so far and the run's metric names.
pub struct LogTarget<'a> {
    pub hook: Option<Hook>,
    pub logs: &'a mut Vec<LogRecord>,
    pub metric_names: &'a mut std::collections::BTreeSet<String>,
    /// The batch's DataLoader when its split has several.
    pub dataloader_idx: Option<u32>,
    /// In `trainer.predict`, where Lightning has no result collection to log into.
    pub predicting: bool,
}

/// Lightning's refusal of `self.log` anywhere in `trainer.predict` (`LightningModule.log`,
/// before its per-hook rules).
pub const NO_LOGGING_IN_PREDICT: &str = "You are trying to `self.log()` but the loop's result collection is not registered yet. This is most likely because you are trying to log in a `predict` hook, but it doesn't support logging";

impl LogTarget<'_> {
    /// Records a `self.log` call, with Lightning's rules for the running hook: where logging
    /// is allowed, which on_step/on_epoch values are, and their defaults.
    pub fn log(&mut self, name: &str, value: Tensor, opts: LogOptions) -> Result<(), OpError> {
        let hook = self.hook.map(Hook::name).unwrap_or("this hook");
        if self.predicting {
            return Err(OpError::new("log", NO_LOGGING_IN_PREDICT));
        }
        check_metric_name(name)?;
        // Lightning keeps users from writing the DataLoader's index into a name themselves.
        if opts.add_dataloader_idx && name.contains(DATALOADER_SUFFIX) {
            return Err(OpError::new(
                "log",
                format!("You called `self.log` with the key `{name}` but it should not contain information about `dataloader_idx` when `add_dataloader_idx=True`"),
            ));
        }
        let shown = format!("{name}{}", dataloader_suffix(opts.add_dataloader_idx, self.dataloader_idx));
        check_metric_name(&shown)?;
        if !self.metric_names.contains(&shown) {
            if self.metric_names.len() >= MAX_METRIC_NAMES {
                return Err(OpError::new(
                    "log",
                    format!(
                        "`{shown}` would be the run's {}th metric name; a run may log at most {MAX_METRIC_NAMES}",
                        MAX_METRIC_NAMES + 1
                    ),
                ));
            }
            self.metric_names.insert(shown);
        }
        if self.logs.len() >= MAX_LOGS_PER_HOOK {
            return Err(OpError::new(
                "log",
                format!("`{hook}` logged more than {MAX_LOGS_PER_HOOK} values in one call"),
            ));
        }
        let Some(rule) = self.hook.and_then(Hook::log_rule) else {
            return Err(OpError::new("log", format!("You can't `self.log()` inside `{hook}`.")));
        };
        let on_step = opts.on_step.unwrap_or(rule.default_on_step);
        let on_epoch = opts.on_epoch.unwrap_or(rule.default_on_epoch);
        // Lightning's `_FxValidator.check_logging_levels` and `_ResultCollection.log` messages.
        for (arg, value, allowed) in [("on_step", on_step, rule.on_step), ("on_epoch", on_epoch, rule.on_epoch)] {
            if !allowed.contains(&value) {
                return Err(OpError::new(
                    "log",
                    format!(
                        "You can't `self.log({arg}={})` inside `{hook}`, must be one of {}.",
                        py_bool(value),
                        py_tuple(allowed)
                    ),
                ));
            }
        }
        if !on_step && !on_epoch {
            return Err(OpError::new("log", "`self.log(on_step=False, on_epoch=False)` is not useful."));
        }
        self.logs.push(LogRecord {
            name: name.to_string(),
            hook: self.hook,
            // A copy, as Lightning's `value.clone()`: the plugin may change its tensor in place
            // (an optimizer step, `add_`) after logging it.
            value: value.f_detach_copy().map_err(|e| OpError::torch("log", e))?,
            prog_bar: opts.prog_bar,
            logger: opts.logger,
            on_step,
            on_epoch,
            reduce_fx: opts.reduce_fx,
            batch_size: opts.batch_size,
            dataloader_idx: self.dataloader_idx,
            add_dataloader_idx: opts.add_dataloader_idx,
            sync_dist: opts.sync_dist,
        });
        Ok(())
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A tuple of bools as Python prints it: `(False,)`, `(False, True)`.
fn py_tuple(values: &[bool]) -> String {
    match values {
        [one] => format!("({},)", py_bool(*one)),
        many => format!("({})", many.iter().map(|b| py_bool(*b)).collect::<Vec<_>>().join(", ")),
    }
}

impl RunContext {
    /// Lightning's `model.train()` / `model.eval()`: what plugins read as `training`, and
    /// whether a synced BatchNorm syncs (torch's SyncBatchNorm syncs in train mode only).
    pub fn set_training(&mut self, on: bool) {
        self.training = on;
        crate::engine::sync_batch_norm::set_module_training(on);
    }

    /// Records a `self.log` call (see [`LogTarget::log`]).
    pub fn log(&mut self, name: &str, value: Tensor, opts: LogOptions) -> Result<(), OpError> {
        self.log_target().log(name, value, opts)
    }

    /// Where the running hook's `self.log` calls go, apart from the rest of the context.
    pub fn log_target(&mut self) -> LogTarget<'_> {
        LogTarget {
            hook: self.current_hook,
            logs: &mut self.logs,
            metric_names: &mut self.metric_names,
            dataloader_idx: self.dataloader_idx,
            predicting: self.stage == Stage::Predict,
        }
    }

    /// A string naming a device the way torch prints it.
    pub fn device_name(&self) -> String {
        device_name(self.device)
    }
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_that_would_corrupt_a_log_are_refused() {
        for bad in ["", "a,b", "a\"b", "loss\n", "x\ry", "\u{1b}[2Kfake", &"n".repeat(MAX_METRIC_NAME + 1)] {
            assert!(check_metric_name(bad).is_err(), "{bad:?}");
        }
        for good in ["train_loss", "val/acc", "lr-Adam/pg1", "loss (x)"] {
            assert!(check_metric_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn refused_logging_says_what_lightning_says() {
        // Lightning 2.6.6's fx_validator.py and result.py messages.
        let mut ctx = RunContext::default();
        let mut refused = |hook: Hook, on_step: Option<bool>, on_epoch: Option<bool>| {
            ctx.current_hook = Some(hook);
            let opts = LogOptions {
                prog_bar: false,
                logger: true,
                on_step,
                on_epoch,
                reduce_fx: ReduceFx::Mean,
                batch_size: None,
                add_dataloader_idx: true,
                sync_dist: false,
            };
            ctx.log("x", Tensor::from(1.0f32), opts).err().map(|e| e.to_string()).unwrap_or_default()
        };
        let m = refused(Hook::OnTrainEpochEnd, Some(true), None);
        assert!(
            m.contains("You can't `self.log(on_step=True)` inside `on_train_epoch_end`, must be one of (False,)."),
            "{m}"
        );
        let m = refused(Hook::TrainingStep, Some(false), Some(false));
        assert!(m.contains("`self.log(on_step=False, on_epoch=False)` is not useful."), "{m}");
        let m = refused(Hook::Setup, None, None);
        assert!(m.contains("You can't `self.log()` inside `setup`."), "{m}");
    }
}
