//! The generic glue between the generated export traits and the SDK's traits. The
//! [`crate::export_plugin!`] macro instantiates it for the plugin's types.

use std::cell::{Cell, RefCell};
use std::thread::LocalKey;

use crate::bindings::exports::lt::plugin::data_module::{Dataset, SampledPass, Split, StreamSource, WorkerInfo};
use crate::bindings::exports::lt::plugin::lightning_module::{Hook, Optimization as WitOptimization};
use crate::bindings::lt::plugin::types::Stage;
pub use crate::bindings::lt::plugin::types::{AttrValue, SavedHparams};
use crate::{Batch, DataModule, Hparams, LightningModule, Tensor};

/// A configured module and the hyper-parameters it was configured with.
pub struct Instance<M> {
    pub module: M,
    pub hparams: Hparams,
}

pub trait Exports {
    type Module: LightningModule;
    type Data: DataModule;
    fn module_slot() -> &'static LocalKey<RefCell<Option<Instance<Self::Module>>>>;
    fn data_slot() -> &'static LocalKey<RefCell<Option<Self::Data>>>;
}

/// The trainer's training flag as read during the module hook running now.
#[derive(Clone, Copy)]
enum TrainingFlag {
    /// No module hook is running: every read asks the host.
    NoHook,
    /// Inside a module hook, not read yet.
    Unread,
    Read(bool),
}

thread_local! {
    static TRAINING: Cell<TrainingFlag> = const { Cell::new(TrainingFlag::NoHook) };
}

/// `trainer.training()`, asked of the host once per module hook: the trainer switches
/// train/eval mode only between hooks (a host call saved per layer that reads it).
pub fn training() -> bool {
    TRAINING.with(|c| match c.get() {
        TrainingFlag::Read(t) => t,
        TrainingFlag::NoHook => crate::trainer::training(),
        TrainingFlag::Unread => {
            let t = crate::trainer::training();
            c.set(TrainingFlag::Read(t));
            t
        }
    })
}

fn with_module<E: Exports, R>(f: impl FnOnce(&mut Instance<E::Module>) -> R) -> R {
    E::module_slot().with(|slot| {
        let mut slot = slot.borrow_mut();
        let inst = slot.as_mut().expect("lthost called a module hook before `configure`");
        TRAINING.with(|c| c.set(TrainingFlag::Unread));
        let r = f(inst);
        TRAINING.with(|c| c.set(TrainingFlag::NoHook));
        r
    })
}

/// A Rust module saves, and logs, all of its hyper-parameters: its defaults merged with
/// every given key (Lightning's `save_hyperparameters()` in `__init__`).
pub fn configure<E: Exports>(hparams: String) -> Result<SavedHparams, String> {
    let hp = Hparams::merged(E::Module::default_hparams(), &hparams)?;
    let module = E::Module::configure(&hp)?;
    let effective = hp.to_json();
    E::module_slot().with(|s| *s.borrow_mut() = Some(Instance { module, hparams: hp }));
    Ok(SavedHparams { hparams: effective, log: true })
}

pub fn configure_optimizers<E: Exports>() -> WitOptimization {
    with_module::<E, _>(|i| i.module.configure_optimizers(&i.hparams).into_wit())
}

pub fn training_step<E: Exports>(batch: Batch, idx: u64) -> Option<Tensor> {
    with_module::<E, _>(|i| i.module.training_step(batch, idx))
}

pub fn validation_step<E: Exports>(batch: Batch, idx: u64) {
    with_module::<E, _>(|i| i.module.validation_step(batch, idx))
}

pub fn test_step<E: Exports>(batch: Batch, idx: u64) {
    with_module::<E, _>(|i| i.module.test_step(batch, idx))
}

pub fn predict_step<E: Exports>(batch: Batch, idx: u64) -> Tensor {
    with_module::<E, _>(|i| i.module.predict_step(batch, idx))
}

pub fn save_state<E: Exports>() -> Option<Vec<u8>> {
    with_module::<E, _>(|i| i.module.on_save_checkpoint())
}

pub fn load_state<E: Exports>(state: Vec<u8>) -> Result<(), String> {
    with_module::<E, _>(|i| i.module.on_load_checkpoint(&state))
}

pub fn implemented_hooks<E: Exports>() -> Vec<Hook> {
    E::Module::hooks()
}

/// Lightning's `lightning_hasattr` on a Rust module: a key of its hyper-parameters (the
/// defaults merged with the given ones, which `configure_optimizers` reads).
pub fn has_attr<E: Exports>(name: String) -> bool {
    E::module_slot().with(|slot| slot.borrow().as_ref().is_some_and(|i| i.hparams.0.contains_key(&name)))
}

/// Lightning's `lightning_setattr` on a Rust module: the hyper-parameter `configure_optimizers`
/// reads next.
pub fn set_attr<E: Exports>(name: String, value: AttrValue) -> Result<(), String> {
    E::module_slot().with(|slot| match slot.borrow_mut().as_mut() {
        Some(i) => {
            if i.hparams.0.contains_key(&name) {
                let value = match value {
                    AttrValue::Int(v) => serde_json::json!(v),
                    AttrValue::Float(v) => serde_json::json!(v),
                };
                i.hparams.0.insert(name, value);
            }
            Ok(())
        }
        None => Err("set_attr before configure".into()),
    })
}

/// Lightning's `lightning_getattr` on a Rust module: the hyper-parameter's number.
pub fn get_attr<E: Exports>(name: String) -> Option<AttrValue> {
    E::module_slot().with(|slot| {
        let slot = slot.borrow();
        let v = slot.as_ref()?.hparams.0.get(&name)?;
        match v.as_i64() {
            Some(i) if !v.is_f64() => Some(AttrValue::Int(i)),
            _ => v.as_f64().map(AttrValue::Float),
        }
    })
}

pub fn on_hook<E: Exports>(hook: Hook, stage: Stage, batch_idx: Option<u64>) -> i32 {
    with_module::<E, _>(|i| i.module.on_hook(hook, stage, batch_idx))
}

/// A Rust DataModule saves nothing of its own: the module's set already holds every given key.
pub fn setup<E: Exports>(stage: Stage, hparams: String) -> Result<SavedHparams, String> {
    let hp = Hparams::merged(serde_json::json!({}), &hparams)?;
    let data = E::Data::setup(stage, &hp)?;
    E::data_slot().with(|s| *s.borrow_mut() = Some(data));
    Ok(SavedHparams { hparams: "{}".into(), log: false })
}

pub fn data_save_state<E: Exports>() -> Option<Vec<u8>> {
    E::data_slot().with(|slot| slot.borrow().as_ref().and_then(|d| d.state_dict()))
}

pub fn data_load_state<E: Exports>(state: Vec<u8>) -> Result<(), String> {
    E::data_slot().with(|slot| match slot.borrow_mut().as_mut() {
        Some(d) => d.load_state_dict(&state),
        None => Err("load_state_dict before setup".into()),
    })
}

thread_local! {
    /// The split's DataLoaders after the first, from the answer index 0 got (the host asks
    /// 1, 2, ... right after it).
    static MORE_DATASETS: std::cell::RefCell<Vec<Option<Dataset>>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub fn dataset<E: Exports>(split: Split, index: u32) -> Option<Dataset> {
    if index > 0 {
        return MORE_DATASETS.with(|m| m.borrow_mut().get_mut(index as usize - 1).and_then(Option::take));
    }
    let all = E::data_slot().with(|slot| {
        let mut slot = slot.borrow_mut();
        let data = slot.as_mut().expect("lthost asked for a dataset before `setup`");
        match split {
            Split::Train => data.train_dataset().into_iter().collect(),
            Split::Val => data.val_datasets(),
            Split::Test => data.test_datasets(),
            Split::Predict => data.predict_datasets(),
        }
    });
    let mut all = all.into_iter().map(Some);
    let first = all.next().flatten();
    MORE_DATASETS.with(|m| *m.borrow_mut() = all.collect());
    first
}

fn with_data<E: Exports, R>(f: impl FnOnce(&mut E::Data) -> R) -> Result<R, String> {
    E::data_slot().with(|slot| match slot.borrow_mut().as_mut() {
        Some(d) => Ok(f(d)),
        None => Err("lthost asked for a stream before `setup`".into()),
    })
}

/// The split's stream: its first DataLoader only (the SDK's further ones are columns).
pub fn stream<E: Exports>(split: Split, index: u32) -> Option<StreamSource> {
    if index > 0 {
        return None;
    }
    with_data::<E, _>(|d| d.stream(split)).ok().flatten()
}

fn first_only(split: Split, index: u32, what: &str) -> Result<(), String> {
    match index {
        0 => Ok(()),
        i => Err(format!("{split:?} DataLoader {i}: the Rust SDK makes {what} for a split's first DataLoader only")),
    }
}

pub fn start_pass<E: Exports>(split: Split, index: u32, worker: WorkerInfo) -> Result<(), String> {
    first_only(split, index, "streams")?;
    with_data::<E, _>(|d| d.start_pass(split, worker))?
}

pub fn next_batch<E: Exports>(split: Split, index: u32) -> Result<Option<Batch>, String> {
    first_only(split, index, "streams")?;
    with_data::<E, _>(|d| d.next_batch(split))?
}

pub fn fetch<E: Exports>(split: Split, index: u32, indices: Vec<u64>) -> Result<Batch, String> {
    first_only(split, index, "items")?;
    with_data::<E, _>(|d| d.fetch(split, indices))?
}

/// A pass of the split's own sampler: the DataLoader iterator's base seed first when asked
/// (torch's `torch.empty((), dtype=torch.int64).random_()`, from the run's generator), then
/// the sampler's batches.
pub fn sample<E: Exports>(split: Split, index: u32, base_seed: bool) -> Result<SampledPass, String> {
    first_only(split, index, "samplers")?;
    let base_seed = base_seed.then(|| {
        let t = crate::aten_ops::empty(&[], Some(crate::Dtype::Int64), None, None, None, None);
        crate::aten_ops::random_(&t).to_i64_list()[0]
    });
    let batches = with_data::<E, _>(|d| d.sample(split))??;
    Ok(SampledPass { base_seed, batches })
}

/// Implements the generated export traits for the macro's type.
#[doc(hidden)]
#[macro_export]
macro_rules! __glue_impls {
    ($ty:ident) => {
        impl $crate::bindings::exports::lt::plugin::lightning_module::Guest for $ty {
            fn configure(hparams: String) -> Result<$crate::glue::SavedHparams, String> {
                $crate::glue::configure::<$ty>(hparams)
            }
            fn configure_optimizers() -> $crate::bindings::exports::lt::plugin::lightning_module::Optimization {
                $crate::glue::configure_optimizers::<$ty>()
            }
            // A Rust module's failure is a panic (the plugin stops); a step returns normally.
            fn training_step(batch: $crate::Batch, batch_idx: u64) -> Result<Option<$crate::Tensor>, String> {
                Ok($crate::glue::training_step::<$ty>(batch, batch_idx))
            }
            fn validation_step(batch: $crate::Batch, batch_idx: u64) -> Result<(), String> {
                $crate::glue::validation_step::<$ty>(batch, batch_idx);
                Ok(())
            }
            fn test_step(batch: $crate::Batch, batch_idx: u64) -> Result<(), String> {
                $crate::glue::test_step::<$ty>(batch, batch_idx);
                Ok(())
            }
            fn predict_step(batch: $crate::Batch, batch_idx: u64) -> Result<$crate::Tensor, String> {
                Ok($crate::glue::predict_step::<$ty>(batch, batch_idx))
            }
            fn save_state() -> Option<Vec<u8>> {
                $crate::glue::save_state::<$ty>()
            }
            fn load_state(state: Vec<u8>) -> Result<(), String> {
                $crate::glue::load_state::<$ty>(state)
            }
            fn implemented_hooks() -> Vec<$crate::Hook> {
                $crate::glue::implemented_hooks::<$ty>()
            }
            fn on_hook(hook: $crate::Hook, stage: $crate::Stage, batch_idx: Option<u64>) -> i32 {
                $crate::glue::on_hook::<$ty>(hook, stage, batch_idx)
            }
            fn has_attr(name: String) -> bool {
                $crate::glue::has_attr::<$ty>(name)
            }
            fn set_attr(name: String, value: $crate::glue::AttrValue) -> Result<(), String> {
                $crate::glue::set_attr::<$ty>(name, value)
            }
            fn get_attr(name: String) -> Option<$crate::glue::AttrValue> {
                $crate::glue::get_attr::<$ty>(name)
            }
        }
        impl $crate::bindings::exports::lt::plugin::data_module::Guest for $ty {
            fn setup(stage: $crate::Stage, hparams: String) -> Result<$crate::glue::SavedHparams, String> {
                $crate::glue::setup::<$ty>(stage, hparams)
            }
            // A Rust DataModule saves no hyper-parameters of its own (the module's set holds
            // every given key): nothing to find.
            fn has_attr(_name: String) -> bool {
                false
            }
            fn set_attr(_name: String, _value: $crate::glue::AttrValue) -> Result<(), String> {
                Ok(())
            }
            fn get_attr(_name: String) -> Option<$crate::glue::AttrValue> {
                None
            }
            fn save_state() -> Option<Vec<u8>> {
                $crate::glue::data_save_state::<$ty>()
            }
            fn load_state(state: Vec<u8>) -> Result<(), String> {
                $crate::glue::data_load_state::<$ty>(state)
            }
            fn dataloader(split: $crate::Split, index: u32) -> Option<$crate::Dataset> {
                $crate::glue::dataset::<$ty>(split, index)
            }
            fn streaming(split: $crate::Split, index: u32) -> Option<$crate::StreamSource> {
                $crate::glue::stream::<$ty>(split, index)
            }
            fn start_pass(split: $crate::Split, index: u32, worker: $crate::WorkerInfo) -> Result<(), String> {
                $crate::glue::start_pass::<$ty>(split, index, worker)
            }
            fn next_batch(split: $crate::Split, index: u32) -> Result<Option<$crate::Batch>, String> {
                $crate::glue::next_batch::<$ty>(split, index)
            }
            fn fetch(
                split: $crate::Split,
                index: u32,
                indices: Vec<u64>,
                _worker: Option<$crate::WorkerInfo>,
            ) -> Result<$crate::Batch, String> {
                $crate::glue::fetch::<$ty>(split, index, indices)
            }
            fn sample(split: $crate::Split, index: u32, base_seed: bool) -> Result<$crate::SampledPass, String> {
                $crate::glue::sample::<$ty>(split, index, base_seed)
            }
        }
    };
}
