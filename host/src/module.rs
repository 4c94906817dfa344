//! The host-side traits the loops drive. A WASM component is one implementation
//! ([`crate::plugin::adapter`]); a native Rust type is another.

use anyhow::Result;
use serde_json::Value;
use tch::Tensor;

use crate::context::{RunContext, Stage};
// What a DataModule hands the data path (its own module there; named here too, beside the traits).
pub use crate::data::spec::{
    sized, BatchSource, DatasetSpec, ItemFetcher, ItemSpec, StreamSpec, WorkerFactory, WorkerInfo, UNBOUNDED,
};
use crate::engine::optim::OptimizerConfig;
use crate::engine::optim::SchedulerSpec;
use crate::hooks::Hook;
use crate::hparams::SavedHparams;

/// Lightning's LightningModule: the model and its steps.
pub trait Module {
    fn name(&self) -> &str;
    /// Builds the layers from the run's hyper-parameters; returns what the module saved
    /// (Lightning's `save_hyperparameters`).
    fn configure(&mut self, ctx: &mut RunContext, hparams: &Value) -> Result<SavedHparams>;
    fn configure_optimizers(&mut self, ctx: &mut RunContext) -> Result<Optimization>;
    /// Returns the loss (None: skip this batch's optimization, or manual optimization).
    fn training_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], batch_idx: u64) -> Result<Option<Tensor>>;
    fn validation_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], batch_idx: u64) -> Result<()>;
    fn test_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], batch_idx: u64) -> Result<()>;
    fn predict_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], batch_idx: u64) -> Result<Tensor>;
    /// Lightning's on_save_checkpoint: bytes the module adds to checkpoints.
    fn save_state(&mut self, _ctx: &mut RunContext) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Lightning's on_load_checkpoint: the bytes [`Module::save_state`] returned.
    fn load_state(&mut self, _ctx: &mut RunContext, _state: &[u8]) -> Result<()> {
        Ok(())
    }
    /// Lightning's `lightning_hasattr`: an attribute `name`, or a key of the module's
    /// hyper-parameters (the learning-rate finder's lookup). None by default.
    fn has_attr(&mut self, _ctx: &mut RunContext, _name: &str) -> Result<bool> {
        Ok(false)
    }
    /// Lightning's `lightning_setattr` wherever [`Module::has_attr`] finds `name`.
    fn set_attr(&mut self, _ctx: &mut RunContext, _name: &str, _value: AttrValue) -> Result<()> {
        Ok(())
    }
    /// Lightning's `lightning_getattr` on the module: the number it holds under `name` (its
    /// hyper-parameter's over its attribute's); None when it holds none.
    fn get_attr(&mut self, _ctx: &mut RunContext, _name: &str) -> Result<Option<AttrValue>> {
        Ok(None)
    }
    /// The hooks the module implements; the loops call [`Module::hook`] for these only.
    fn implemented_hooks(&mut self, _ctx: &mut RunContext) -> Result<Vec<Hook>> {
        Ok(Vec::new())
    }
    /// Scheduler `index` (one the plugin runs); `Start`, `Step` and `State` return its state.
    fn plugin_scheduler(
        &mut self,
        _ctx: &mut RunContext,
        index: usize,
        _call: SchedulerCall,
    ) -> Result<Option<String>> {
        anyhow::bail!("module `{}` runs no LR schedulers of its own (scheduler {index})", self.name())
    }
    /// Optimizer `index` (one the plugin runs); `State` returns its state.
    fn plugin_optimizer(
        &mut self,
        _ctx: &mut RunContext,
        index: usize,
        _call: OptimizerCall,
    ) -> Result<Option<PluginOptimizerState>> {
        anyhow::bail!("module `{}` runs no optimizers of its own (optimizer {index})", self.name())
    }
    /// A module hook (Lightning's ModelHooks). Returns -1 from `on_train_batch_start` to skip
    /// the rest of the epoch; otherwise 0.
    fn hook(&mut self, _ctx: &mut RunContext, _hook: Hook, _batch_idx: Option<u64>) -> Result<i32> {
        Ok(0)
    }
    /// The module's own callbacks (a Lightning file's `Callback`s, run in the plugin), asked
    /// once it is configured. None by default.
    fn file_callbacks(&mut self, _ctx: &mut RunContext) -> Result<Vec<FileCallback>> {
        Ok(Vec::new())
    }
    /// Calls `hook` on the module's own callbacks that override it, in their order.
    fn file_callback_hook(&mut self, _ctx: &mut RunContext, _hook: Hook, _batch_idx: Option<u64>) -> Result<()> {
        Ok(())
    }
    /// Its callbacks' `state_dict()`s (JSON text) by state key, for a checkpoint.
    fn file_callback_states(&mut self, _ctx: &mut RunContext) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
    /// `load_state_dict` of its callback `state_key`, from a checkpoint's JSON text.
    fn load_file_callback_state(&mut self, _ctx: &mut RunContext, _state_key: &str, _state: &str) -> Result<()> {
        Ok(())
    }
}

/// One of a module's own callbacks: its checkpoint key and the hooks it overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct FileCallback {
    pub state_key: String,
    pub hooks: Vec<Hook>,
}

/// The hooks the loops call on a module: those it implements, and those its own callbacks
/// override (called before the run's other callbacks, Lightning's order for a user's).
#[derive(Debug, Clone, Default)]
pub struct ModuleHooks {
    pub own: std::collections::HashSet<Hook>,
    pub callbacks: std::collections::HashSet<Hook>,
    /// Its callbacks' state keys (their checkpoint entries), in order.
    pub callback_keys: Vec<String>,
}

impl ModuleHooks {
    /// Asks a configured module which hooks it and its own callbacks implement.
    pub fn of(module: &mut dyn Module, ctx: &mut RunContext) -> Result<Self> {
        let own = module.implemented_hooks(ctx)?.into_iter().collect();
        let cbs = module.file_callbacks(ctx)?;
        // (Two stateful callbacks under one key are refused by the plugin, as Lightning does.)
        let mut seen = std::collections::HashSet::new();
        let callback_keys =
            cbs.iter().filter(|c| seen.insert(c.state_key.clone())).map(|c| c.state_key.clone()).collect();
        Ok(ModuleHooks { own, callbacks: cbs.into_iter().flat_map(|c| c.hooks).collect(), callback_keys })
    }

    /// Whether the module implements `hook` itself.
    pub fn contains(&self, hook: &Hook) -> bool {
        self.own.contains(hook)
    }
}

/// What the host asks of a scheduler the plugin runs (WIT `lr-schedulers`).
#[derive(Debug, Clone, Copy)]
pub enum SchedulerCall<'a> {
    /// Apply the rates its constructor set, once the optimizers exist.
    Start,
    /// `scheduler.step()`, or `step(metric)`.
    Step(Option<f64>),
    /// `state_dict()` (JSON text).
    State,
    /// `load_state_dict(...)` from a checkpoint's JSON text.
    Load(&'a str),
}

/// What the host asks of an optimizer the plugin runs (WIT `plugin-optimizers`).
#[derive(Debug, Clone, Copy)]
pub enum OptimizerCall<'a> {
    /// `optimizer.step()`.
    Step,
    /// `state_dict()`: tensors by name, the rest as JSON text.
    State,
    /// `load_state_dict(...)` from a checkpoint.
    Load(&'a [(String, Tensor)], &'a str),
}

/// A plugin optimizer's state: tensors by name, the rest as JSON text.
pub type PluginOptimizerState = (Vec<(String, Tensor)>, String);

/// What `configure_optimizers` returns (Lightning's optimizers + lr_scheduler configs).
#[derive(Debug, Clone, PartialEq)]
pub struct Optimization {
    pub optimizers: Vec<OptimizerConfig>,
    pub schedulers: Vec<SchedulerSpec>,
    /// Lightning's `automatic_optimization`.
    pub automatic: bool,
}

impl From<OptimizerConfig> for Optimization {
    fn from(o: OptimizerConfig) -> Self {
        Optimization { optimizers: vec![o], schedulers: Vec::new(), automatic: true }
    }
}

/// The splits a DataModule can provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
    Predict,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::Predict => "predict",
        }
    }
}

/// A number a module or DataModule holds as an attribute or hyper-parameter (the WIT's
/// `attr-value`): the learning-rate finder writes a float, the batch-size finder an int.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Float(f64),
}

impl AttrValue {
    pub fn as_f64(self) -> f64 {
        match self {
            AttrValue::Int(v) => v as f64,
            AttrValue::Float(v) => v,
        }
    }
}

/// Lightning's LightningDataModule.
pub trait DataModule {
    fn name(&self) -> &str;
    /// Returns what the DataModule saved (`save_hyperparameters`; the default: nothing).
    fn setup(&mut self, ctx: &mut RunContext, stage: Stage, hparams: &Value) -> Result<SavedHparams>;
    /// DataLoader `index` of the split (Lightning's list of `val_dataloader()`s): the loops
    /// ask 0, 1, ... until neither this nor [`DataModule::stream`] gives one; index 0 asks
    /// the DataModule anew. The train split has one.
    fn dataset(&mut self, ctx: &mut RunContext, split: Split, index: u32) -> Result<Option<DatasetSpec>>;
    /// DataLoader `index`'s streaming source, asked for when `dataset` gives none.
    fn stream(&mut self, _ctx: &mut RunContext, _split: Split, _index: u32) -> Result<Option<StreamSpec>> {
        Ok(None)
    }
    /// Lightning's `lightning_hasattr` on the DataModule (see [`Module::has_attr`]).
    fn has_attr(&mut self, _ctx: &mut RunContext, _name: &str) -> Result<bool> {
        Ok(false)
    }
    /// Lightning's `lightning_setattr` on the DataModule.
    fn set_attr(&mut self, _ctx: &mut RunContext, _name: &str, _value: AttrValue) -> Result<()> {
        Ok(())
    }
    /// Lightning's `lightning_getattr` on the DataModule (see [`Module::get_attr`]).
    fn get_attr(&mut self, _ctx: &mut RunContext, _name: &str) -> Result<Option<AttrValue>> {
        Ok(None)
    }
    /// Lightning's `state_dict`: bytes kept in checkpoints.
    fn save_state(&mut self, _ctx: &mut RunContext) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Lightning's `load_state_dict`.
    fn load_state(&mut self, _ctx: &mut RunContext, _state: &[u8]) -> Result<()> {
        Ok(())
    }
}
