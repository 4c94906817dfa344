//! The Rust SDK for lthost plugins.
//!
//! Implement [`LightningModule`] (and [`DataModule`] when the plugin brings its data), then
//! call [`export_plugin!`]. Tensors are handles to libtorch tensors in the host; every op
//! runs there, with autograd. Plugin authors never touch the generated bindings.
//!
//! ```ignore
//! use lthost_sdk::prelude::*;
//!
//! struct Mlp { l1: nn::Linear, l2: nn::Linear }
//!
//! impl LightningModule for Mlp {
//!     fn configure(hp: &Hparams) -> Result<Self, String> {
//!         Ok(Mlp { l1: nn::Linear::new("l1", 64, 128, true), l2: nn::Linear::new("l2", 128, 10, true) })
//!     }
//!     fn configure_optimizers(&self, hp: &Hparams) -> Optimization { Optimizer::adam(hp.f64_or("lr", 1e-3)).into() }
//!     fn training_step(&mut self, batch: Batch, _idx: u64) -> Option<Tensor> {
//!         let (x, y) = (&batch[0], &batch[1]);
//!         let loss = F::cross_entropy(&self.l2.forward(&self.l1.forward(x).relu()), y);
//!         log::log_prog_bar("train_loss", &loss);
//!         Some(loss)
//!     }
//! }
//! ```

#[doc(hidden)]
pub mod bindings;
pub mod callback;
pub mod data;
#[doc(hidden)]
pub mod glue;
pub mod hparams;
pub mod log;
pub mod logger;
mod ops;
pub mod optim;
pub mod transforms;

pub use bindings::exports::lt::plugin::data_module::{
    Dataset, DistributedSampler, Sampler, Split, StreamSource, WeightedSampler, WorkerInfo,
};
pub use bindings::exports::lt::plugin::lightning_module::Hook;
pub use bindings::lt::plugin::nn;
pub use bindings::lt::plugin::tensor::{BinaryOp, CompareOp, CsvColumn, ReduceOp, Tensor, UnaryOp};
pub use bindings::lt::plugin::trainer;
pub use bindings::lt::plugin::types::{Dtype, Reduction, Stage};
pub use hparams::Hparams;
pub use optim::{Interval, Optimization, Optimizer, Scheduler};
pub use serde_json::{self, json};

/// The tensors of one batch, one per dataset column.
pub type Batch = Vec<Tensor>;

/// torch.nn.functional: losses.
#[allow(non_snake_case)]
pub mod F {
    use super::bindings::lt::plugin::tensor as t;
    use super::{Reduction, Tensor};

    pub fn cross_entropy(input: &Tensor, target: &Tensor) -> Tensor {
        t::cross_entropy(input, target, Reduction::Mean, 0.0)
    }
    pub fn nll_loss(input: &Tensor, target: &Tensor) -> Tensor {
        t::nll_loss(input, target, Reduction::Mean)
    }
    pub fn mse_loss(input: &Tensor, target: &Tensor) -> Tensor {
        t::mse_loss(input, target, Reduction::Mean)
    }
    pub fn l1_loss(input: &Tensor, target: &Tensor) -> Tensor {
        t::l1_loss(input, target, Reduction::Mean)
    }
    pub fn binary_cross_entropy_with_logits(input: &Tensor, target: &Tensor) -> Tensor {
        t::binary_cross_entropy_with_logits(input, target, Reduction::Mean)
    }
    /// Any loss with an explicit reduction and label smoothing.
    pub fn cross_entropy_with(input: &Tensor, target: &Tensor, reduction: Reduction, label_smoothing: f64) -> Tensor {
        t::cross_entropy(input, target, reduction, label_smoothing)
    }
}

/// A LightningModule. Every hook but `configure`, `configure_optimizers` and
/// `training_step` has a default.
pub trait LightningModule: Sized + 'static {
    /// Hyper-parameters the module uses when the run does not set them.
    fn default_hparams() -> serde_json::Value {
        serde_json::json!({})
    }
    /// Builds the layers (`__init__`).
    fn configure(hparams: &Hparams) -> Result<Self, String>;
    /// An optimizer (`Optimizer::adam(lr).into()`), with schedulers, or several for manual
    /// optimization.
    fn configure_optimizers(&self, hparams: &Hparams) -> Optimization;
    /// Returns the loss; None skips the batch (and is what manual optimization returns).
    fn training_step(&mut self, batch: Batch, batch_idx: u64) -> Option<Tensor>;
    fn validation_step(&mut self, _batch: Batch, _batch_idx: u64) {}
    fn test_step(&mut self, _batch: Batch, _batch_idx: u64) {}
    fn predict_step(&mut self, _batch: Batch, _batch_idx: u64) -> Tensor {
        panic!("predict_step is not implemented by this module")
    }
    /// Lightning's on_save_checkpoint: bytes to keep in checkpoints (e.g. counters).
    fn on_save_checkpoint(&self) -> Option<Vec<u8>> {
        None
    }
    /// Lightning's on_load_checkpoint: what `on_save_checkpoint` returned.
    fn on_load_checkpoint(&mut self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }
    /// The Lightning hooks this module implements (`on_hook` is called for these only).
    fn hooks() -> Vec<Hook> {
        Vec::new()
    }
    /// A hook, in Lightning's order. Return -1 from `OnTrainBatchStart` to skip the rest
    /// of the epoch; 0 otherwise.
    fn on_hook(&mut self, _hook: Hook, _stage: Stage, _batch_idx: Option<u64>) -> i32 {
        0
    }
}

/// A LightningDataModule. Datasets default to none.
pub trait DataModule: Sized + 'static {
    fn setup(stage: Stage, hparams: &Hparams) -> Result<Self, String>;
    fn train_dataset(&mut self) -> Option<Dataset> {
        None
    }
    fn val_dataset(&mut self) -> Option<Dataset> {
        None
    }
    fn test_dataset(&mut self) -> Option<Dataset> {
        None
    }
    fn predict_dataset(&mut self) -> Option<Dataset> {
        None
    }
    /// A streaming source for `split` (asked when its dataset is None): batches this
    /// DataModule makes itself, `num_workers` instances of it at once.
    fn stream(&mut self, _split: Split) -> Option<StreamSource> {
        None
    }
    /// A pass of `split`'s stream begins in this instance (one of `worker.num_workers`):
    /// start over, and make this worker's share of the pass.
    fn start_pass(&mut self, split: Split, _worker: WorkerInfo) -> Result<(), String> {
        Err(format!("this DataModule has no {split:?} stream"))
    }
    /// The next batch of this instance's share of the pass; None when it has ended.
    fn next_batch(&mut self, _split: Split) -> Result<Option<Batch>, String> {
        Ok(None)
    }
    /// Lightning's `state_dict`: bytes kept in checkpoints.
    fn state_dict(&self) -> Option<Vec<u8>> {
        None
    }
    /// Lightning's `load_state_dict`: what `state_dict` returned.
    fn load_state_dict(&mut self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// A DataModule that provides nothing, for plugins that only hold a model.
pub struct NoData;

impl DataModule for NoData {
    fn setup(_: Stage, _: &Hparams) -> Result<Self, String> {
        Ok(NoData)
    }
}

/// Builds a dataset record: columns batched along dim 0.
pub fn dataset(columns: Vec<Tensor>, batch_size: u32, shuffle: bool) -> Dataset {
    Dataset { columns, batch_size, shuffle, drop_last: false, sampler: None }
}

pub mod prelude {
    pub use crate::data::{random_split, subset, Lengths};
    pub use crate::log;
    pub use crate::nn;
    pub use crate::ops::scalar;
    pub use crate::optim::manual;
    pub use crate::trainer;
    pub use crate::{
        dataset, export_plugin, json, Batch, DataModule, Dataset, Dtype, Hook, Hparams, Interval, LightningModule,
        NoData, Optimization, Optimizer, Scheduler, Split, Stage, StreamSource, Tensor, WorkerInfo, F,
    };
}

/// Exports a LightningModule (and optionally a DataModule) as the plugin's component
/// exports: `export_plugin!(MyModel, MyData);` or `export_plugin!(MyModel);`.
#[macro_export]
macro_rules! export_plugin {
    ($module:ty) => {
        $crate::export_plugin!($module, $crate::NoData);
    };
    ($module:ty, $data:ty) => {
        struct __LtPlugin;
        impl $crate::glue::Exports for __LtPlugin {
            type Module = $module;
            type Data = $data;
            fn module_slot() -> &'static ::std::thread::LocalKey<::std::cell::RefCell<Option<$crate::glue::Instance<$module>>>> {
                ::std::thread_local! {
                    static SLOT: ::std::cell::RefCell<Option<$crate::glue::Instance<$module>>> = const { ::std::cell::RefCell::new(None) };
                }
                &SLOT
            }
            fn data_slot() -> &'static ::std::thread::LocalKey<::std::cell::RefCell<Option<$data>>> {
                ::std::thread_local! {
                    static SLOT: ::std::cell::RefCell<Option<$data>> = const { ::std::cell::RefCell::new(None) };
                }
                &SLOT
            }
        }
        $crate::__glue_impls!(__LtPlugin);
        $crate::bindings::export_raw!(__LtPlugin with_types_in $crate::bindings);
    };
}
