//! A native (non-WASM) LightningModule and DataModule for in-file loop tests: the loops
//! drive them through the same [`Module`] and [`DataModule`] traits a plugin's adapter
//! implements, so loop logic is tested in the unit-test binary without building a plugin.
//!
//! [`Regression`] is a linear model `y = x·wᵀ + b` trained with SGD (momentum, weight
//! decay) on an MSE loss, logging `train_loss` on step and epoch and `val_loss`; it records
//! every hook the loops call and can end each epoch at a batch (`on_train_batch_start`
//! returning -1). [`Points`] is a shuffled dataset of 16 points, batch 4, and 8 validation
//! points. Everything random is drawn from the run's seeded generator, in the order its
//! Lightning twin (tests/reference/native_reference.py) draws: the weight, then the points.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};

use anyhow::{anyhow, Result};
use serde_json::Value;
use tch::{Kind, Tensor};

use crate::context::{LogOptions, ReduceFx, RunContext, Stage};
use crate::engine::optim::optimizer_set::{Interval, SchedulerSpec};
use crate::engine::optim::sgd::SgdConfig;
use crate::engine::optim::{Algorithm, OptimizerConfig};
use crate::engine::schedulers::{PlateauConfig, SchedulerKind};
use crate::hooks::{Hook, Owner};
use crate::hparams::SavedHparams;
use crate::module::{DataModule, DatasetSpec, Module, Optimization, Split};

/// Runs share libtorch's global generator and thread settings: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The hooks a run called, in order (`training_step` and the other steps included).
pub type CallLog = Rc<RefCell<Vec<String>>>;

/// A Trainer configuration for in-file tests: `max_epochs`, seed 0, one CPU thread, nothing
/// written or shown but what a test turns on.
pub fn quiet(dir: &std::path::Path, max_epochs: i64) -> crate::config::TrainerConfig {
    crate::config::TrainerConfig {
        max_epochs: Some(max_epochs),
        logger: false,
        enable_checkpointing: false,
        enable_progress_bar: false,
        enable_model_summary: false,
        seed: Some(0),
        accelerator: "cpu".into(),
        threads: Some(1),
        default_root_dir: dir.to_path_buf(),
        ..crate::config::TrainerConfig::default()
    }
}

pub struct Regression {
    pub calls: CallLog,
    /// `on_train_batch_start` returns -1 at this batch index, every epoch.
    pub end_epoch_at: Option<u64>,
    /// An epoch-interval ReduceLROnPlateau (factor 0.5, patience 0, torch's other defaults) on
    /// this metric.
    pub plateau_on: Option<&'static str>,
    /// `training_step` returns None (after logging its loss) at even batch indices.
    pub none_even: bool,
    /// `training_step` logs `step` = 10 · global_step + 1, on the step only.
    pub log_step: bool,
    /// `validation_step` fails at this (epoch, batch index).
    pub fail_validation_at: Option<(u64, u64)>,
    /// SGD's learning rate: the module's `lr` field (the learning-rate finder sets it).
    pub lr: f64,
    /// `validation_step` logs `val_loss` on the step too.
    pub val_on_step: bool,
    /// `training_step` logs `dup` = 1.0 and `on_train_batch_end` `dup` = 3.0 with this
    /// reduction, both on step and epoch: one name from two hooks.
    pub dup_hooks: Option<ReduceFx>,
    /// `training_step` (on the step) and `validation_step` both log the loss as `shared`.
    pub shared_name: bool,
    /// With several validation DataLoaders, `validation_step` also logs `val_rows_<i>` (the
    /// batch's rows, summed) with `add_dataloader_idx=False`.
    pub loader_names: bool,
    /// `training_step` logs `sparse` = batch_idx + 0.5 (on the step) at odd batch indices
    /// only, `validation_step` logs `val_sparse` = 1.5 (on the step) at batch 0 only.
    pub sparse_log: bool,
    /// `on_validation_epoch_end` logs this as `epoch_value`.
    pub epoch_end_value: Option<f32>,
    /// `training_step` logs `foo` and `validation_step` `bar` = batch_idx, on the epoch only,
    /// reduced by this.
    pub reduce_probe: Option<ReduceFx>,
    /// What the module logs where (Lightning's logging tests as data): see [`Planned`].
    pub log_plan: Vec<Planned>,
    /// Per batch hook called: its name and whether every tensor of the batch it sees is on
    /// the run's device (Lightning's test_callback_batch_on_device).
    pub batch_devices: Option<Rc<RefCell<Vec<(String, bool)>>>>,
    /// Every training step's loss.
    pub losses: Vec<f64>,
    params: Option<(Tensor, Tensor)>,
}

/// One entry of a log plan (docs/lightning-tests/logging.md, harness LP; its Lightning twin's
/// `log_plan`): `name` logged in the hook or step named `hook`, with `value` and `opts`.
#[derive(Debug, Clone)]
pub struct Planned {
    pub hook: String,
    pub name: String,
    pub value: PlanValue,
    pub opts: LogOptions,
}

/// What a planned entry logs: a number, or the batch index, current epoch or global step.
#[derive(Debug, Clone, Copy)]
pub enum PlanValue {
    Number(f32),
    BatchIdx,
    Epoch,
    Step,
}

impl Planned {
    /// An entry as the reference writes it: `{hook, name, value, on_step?, on_epoch?,
    /// prog_bar?, logger?, reduce_fx?}`.
    pub fn from_json(e: &Value) -> Result<Planned> {
        let text = |k: &str| e[k].as_str().map(str::to_string).ok_or_else(|| anyhow!("plan entry {e}: no `{k}`"));
        let value = match &e["value"] {
            Value::String(s) if s == "batch_idx" => PlanValue::BatchIdx,
            Value::String(s) if s == "epoch" => PlanValue::Epoch,
            Value::String(s) if s == "step" => PlanValue::Step,
            v => PlanValue::Number(v.as_f64().ok_or_else(|| anyhow!("plan entry {e}: a value"))? as f32),
        };
        let reduce_fx = match e["reduce_fx"].as_str() {
            None | Some("mean") => ReduceFx::Mean,
            Some("sum") => ReduceFx::Sum,
            Some("max") => ReduceFx::Max,
            Some("min") => ReduceFx::Min,
            Some(other) => return Err(anyhow!("plan entry {e}: reduce_fx {other}")),
        };
        let opts = LogOptions {
            prog_bar: e["prog_bar"].as_bool().unwrap_or(false),
            logger: e["logger"].as_bool().unwrap_or(true),
            on_step: e["on_step"].as_bool(),
            on_epoch: e["on_epoch"].as_bool(),
            reduce_fx,
            batch_size: None,
            add_dataloader_idx: true,
            sync_dist: false,
        };
        Ok(Planned { hook: text("hook")?, name: text("name")?, value, opts })
    }
}

impl Regression {
    pub fn new() -> Self {
        Regression {
            calls: CallLog::default(),
            end_epoch_at: None,
            fail_validation_at: None,
            lr: 0.05,
            val_on_step: false,
            dup_hooks: None,
            shared_name: false,
            loader_names: false,
            none_even: false,
            log_step: false,
            sparse_log: false,
            reduce_probe: None,
            epoch_end_value: None,
            plateau_on: None,
            log_plan: Vec::new(),
            batch_devices: None,
            losses: Vec::new(),
            params: None,
        }
    }

    /// The weight and bias as they are now (copies).
    pub fn weights(&self) -> Vec<Tensor> {
        self.params.iter().flat_map(|(w, b)| [w.detach().copy(), b.detach().copy()]).collect()
    }

    fn call(&self, name: &str) {
        self.calls.borrow_mut().push(name.to_string());
    }

    fn loss(&self, batch: &[Tensor]) -> Result<Tensor> {
        let (w, b) = self.params.as_ref().ok_or_else(|| anyhow!("configure did not run"))?;
        let [x, y] = batch else { return Err(anyhow!("a batch is (x, y), got {} tensors", batch.len())) };
        let pred = x.f_matmul(&w.f_tr()?)?.f_add(b)?;
        Ok(pred.f_sub(y)?.f_square()?.f_mean(Kind::Float)?)
    }

    /// `self.log(name, value, on_epoch=True)`'s options.
    fn epoch_options() -> LogOptions {
        LogOptions {
            prog_bar: false,
            logger: true,
            on_step: None,
            on_epoch: Some(true),
            reduce_fx: ReduceFx::Mean,
            batch_size: None,
            add_dataloader_idx: true,
            sync_dist: false,
        }
    }

    /// `self.log(name, value, on_epoch=True, reduce_fx=reduce)` of a number.
    fn log_value(ctx: &mut RunContext, name: &str, value: f32, reduce: ReduceFx) -> Result<()> {
        let t = Tensor::f_from_slice(&[value])?.f_reshape([])?;
        let opts = LogOptions { reduce_fx: reduce, ..Self::epoch_options() };
        ctx.log(name, t, opts).map_err(|e| anyhow!(e))
    }

    /// `self.log(name, value, on_step=False, on_epoch=True, reduce_fx=reduce)` of a number.
    fn log_epoch_only(ctx: &mut RunContext, name: &str, value: f32, reduce: ReduceFx) -> Result<()> {
        let t = Tensor::f_from_slice(&[value])?.f_reshape([])?;
        let opts = LogOptions { reduce_fx: reduce, on_step: Some(false), ..Self::epoch_options() };
        ctx.log(name, t, opts).map_err(|e| anyhow!(e))
    }

    /// `self.log(name, value, on_step=True, on_epoch=False)` of a number.
    fn log_on_step(ctx: &mut RunContext, name: &str, value: f32) -> Result<()> {
        let t = Tensor::f_from_slice(&[value])?.f_reshape([])?;
        let opts = LogOptions { on_step: Some(true), on_epoch: Some(false), ..Self::epoch_options() };
        ctx.log(name, t, opts).map_err(|e| anyhow!(e))
    }

    fn log(ctx: &mut RunContext, name: &str, value: &Tensor) -> Result<()> {
        ctx.log(name, value.f_detach()?, Self::epoch_options()).map_err(|e| anyhow!(e))
    }

    /// Logs what the plan says for `hook` (a hook's or a step's name).
    fn plan(&self, ctx: &mut RunContext, hook: &str, batch_idx: Option<u64>) -> Result<()> {
        for e in self.log_plan.iter().filter(|e| e.hook == hook) {
            let v = match e.value {
                PlanValue::Number(v) => v,
                PlanValue::BatchIdx => batch_idx.ok_or_else(|| anyhow!("{hook} has no batch index"))? as f32,
                PlanValue::Epoch => ctx.current_epoch as f32,
                PlanValue::Step => ctx.global_step as f32,
            };
            let t = Tensor::f_from_slice(&[v])?.f_reshape([])?;
            ctx.log(&e.name, t, e.opts).map_err(|e| anyhow!(e))?;
        }
        Ok(())
    }
}

impl Module for Regression {
    fn name(&self) -> &str {
        "regression"
    }

    fn configure(&mut self, ctx: &mut RunContext, hparams: &Value) -> Result<SavedHparams> {
        let w = Tensor::f_randn([1, 3], (Kind::Float, ctx.device))?.f_mul_scalar(0.1)?;
        let w = ctx.params.add_parameter("linear.weight", w)?;
        let b = ctx.params.add_parameter("linear.bias", Tensor::f_zeros([1], (Kind::Float, ctx.device))?)?;
        self.params = Some((w, b));
        // Kept in checkpoints, not logged: the Python twin calls no `save_hyperparameters`, so
        // its loggers get none (and its CSV logger writes no hparams.yaml).
        Ok(SavedHparams { log: false, ..SavedHparams::logged(hparams) })
    }

    fn has_attr(&mut self, _ctx: &mut RunContext, name: &str) -> Result<bool> {
        Ok(name == "lr")
    }

    fn set_attr(&mut self, _ctx: &mut RunContext, name: &str, value: crate::module::AttrValue) -> Result<()> {
        if name == "lr" {
            self.lr = value.as_f64();
        }
        Ok(())
    }

    fn configure_optimizers(&mut self, _ctx: &mut RunContext) -> Result<Optimization> {
        let sgd = SgdConfig { lr: self.lr, momentum: 0.9, dampening: 0.0, weight_decay: 1e-3, nesterov: false };
        let mut o: Optimization = OptimizerConfig::from(Algorithm::Sgd(sgd)).into();
        if let Some(monitor) = self.plateau_on {
            let plateau = PlateauConfig {
                mode_min: true,
                factor: 0.5,
                patience: 0,
                threshold: 1e-4,
                threshold_rel: true,
                cooldown: 0,
                min_lr: 0.0,
                eps: 1e-8,
            };
            o.schedulers.push(SchedulerSpec {
                kind: SchedulerKind::ReduceOnPlateau(plateau),
                optimizer: 0,
                interval: Interval::Epoch,
                frequency: 1,
                monitor: Some(monitor.to_string()),
                strict: true,
            });
        }
        Ok(o)
    }

    fn training_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], batch_idx: u64) -> Result<Option<Tensor>> {
        self.call("training_step");
        let loss = self.loss(batch)?;
        self.plan(ctx, "training_step", Some(batch_idx))?;
        Self::log(ctx, "train_loss", &loss)?;
        if self.log_step {
            let step = Tensor::f_from_slice(&[10.0 * ctx.global_step as f32 + 1.0])?.f_reshape([])?;
            let opts = LogOptions {
                prog_bar: false,
                logger: true,
                on_step: None,
                on_epoch: Some(false),
                reduce_fx: ReduceFx::Mean,
                batch_size: None,
                add_dataloader_idx: true,
                sync_dist: false,
            };
            ctx.log("step", step, opts).map_err(|e| anyhow!(e))?;
        }
        if self.dup_hooks.is_some() {
            Self::log_value(ctx, "dup", 1.0, ReduceFx::Mean)?;
        }
        if self.shared_name {
            let opts = LogOptions { on_epoch: None, ..Self::epoch_options() };
            ctx.log("shared", loss.f_detach()?, opts).map_err(|e| anyhow!(e))?;
        }
        if self.sparse_log && batch_idx % 2 == 1 {
            Self::log_on_step(ctx, "sparse", batch_idx as f32 + 0.5)?;
        }
        if let Some(reduce) = self.reduce_probe {
            Self::log_epoch_only(ctx, "foo", batch_idx as f32, reduce)?;
        }
        self.losses.push(loss.f_double_value(&[])?);
        Ok(if self.none_even && batch_idx % 2 == 0 { None } else { Some(loss) })
    }

    fn validation_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], batch_idx: u64) -> Result<()> {
        self.call("validation_step");
        if self.fail_validation_at == Some((ctx.current_epoch, batch_idx)) {
            return Err(anyhow!("validation_step fails at epoch {}, batch {batch_idx}", ctx.current_epoch));
        }
        let loss = self.loss(batch)?;
        self.plan(ctx, "validation_step", Some(batch_idx))?;
        if self.val_on_step {
            let opts = LogOptions { on_step: Some(true), ..Self::epoch_options() };
            ctx.log("val_loss", loss.f_detach()?, opts).map_err(|e| anyhow!(e))?;
        } else {
            Self::log(ctx, "val_loss", &loss)?;
        }
        if self.shared_name {
            Self::log(ctx, "shared", &loss)?;
        }
        if self.sparse_log && batch_idx == 0 {
            Self::log_on_step(ctx, "val_sparse", 1.5)?;
        }
        if let Some(reduce) = self.reduce_probe {
            Self::log_epoch_only(ctx, "bar", batch_idx as f32, reduce)?;
        }
        if let (true, Some(i)) = (self.loader_names, ctx.dataloader_idx) {
            let rows = Tensor::f_from_slice(&[batch[0].size()[0] as f32])?.f_reshape([])?;
            let opts = LogOptions { reduce_fx: ReduceFx::Sum, add_dataloader_idx: false, ..Self::epoch_options() };
            ctx.log(&format!("val_rows_{i}"), rows, opts).map_err(|e| anyhow!(e))?;
        }
        Ok(())
    }

    fn test_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], batch_idx: u64) -> Result<()> {
        self.call("test_step");
        let loss = self.loss(batch)?;
        self.plan(ctx, "test_step", Some(batch_idx))?;
        Self::log(ctx, "test_loss", &loss)
    }

    fn predict_step(&mut self, _ctx: &mut RunContext, batch: &[Tensor], _batch_idx: u64) -> Result<Tensor> {
        self.call("predict_step");
        let (w, b) = self.params.as_ref().ok_or_else(|| anyhow!("configure did not run"))?;
        Ok(batch[0].f_matmul(&w.f_tr()?)?.f_add(b)?)
    }

    fn implemented_hooks(&mut self, _ctx: &mut RunContext) -> Result<Vec<Hook>> {
        // Every hook modules and callbacks share (Lightning's ModelHooks), recorded.
        Ok(Hook::ALL.iter().copied().filter(|h| h.owner() == Owner::Both).collect())
    }

    fn hook(&mut self, ctx: &mut RunContext, hook: Hook, batch_idx: Option<u64>) -> Result<i32> {
        self.call(hook.name());
        if let Some(seen) = self.batch_devices.as_ref().filter(|_| {
            let name = hook.name();
            name.ends_with("_batch_start") || name.ends_with("_batch_end")
        }) {
            let on_device = !ctx.batch.is_empty() && ctx.batch.iter().all(|t| t.device() == ctx.device);
            seen.borrow_mut().push((hook.name().to_string(), on_device));
        }
        self.plan(ctx, hook.name(), batch_idx)?;
        if let (Some(v), Hook::OnValidationEpochEnd) = (self.epoch_end_value, hook) {
            Self::log_value(ctx, "epoch_value", v, ReduceFx::Mean)?;
        }
        if let (Some(reduce), Hook::OnTrainBatchEnd) = (self.dup_hooks, hook) {
            Self::log_value(ctx, "dup", 3.0, reduce)?;
        }
        let end = hook == Hook::OnTrainBatchStart && batch_idx.is_some() && batch_idx == self.end_epoch_at;
        Ok(if end { -1 } else { 0 })
    }
}

/// 16 training points (batch 4, shuffled) and 8 validation points of `y = x·[1, -2, 0.5] + 0.3`
/// with noise, drawn at `setup`; with `second_val`, a second validation (and test, predict)
/// DataLoader of that many points, batch 3, drawn after them.
#[derive(Default)]
pub struct Points {
    train: Option<(Tensor, Tensor)>,
    val: Option<(Tensor, Tensor)>,
    val2: Option<(Tensor, Tensor)>,
    /// The second evaluation DataLoader's points.
    pub second_val: Option<i64>,
    /// Fail when the train dataset is asked for this many times (a reload that breaks).
    pub fail_at_train_ask: Option<usize>,
    train_asks: usize,
}

fn points(n: i64) -> Result<(Tensor, Tensor)> {
    let x = Tensor::f_randn([n, 3], (Kind::Float, tch::Device::Cpu))?;
    let w = Tensor::f_from_slice(&[1.0f32, -2.0, 0.5])?.f_reshape([3, 1])?;
    let noise = Tensor::f_randn([n, 1], (Kind::Float, tch::Device::Cpu))?.f_mul_scalar(0.1)?;
    let y = x.f_matmul(&w)?.f_add_scalar(0.3)?.f_add(&noise)?;
    Ok((x, y))
}

impl Points {
    /// With a second evaluation DataLoader of `n` points (none: one DataLoader per split).
    pub fn with_second_val(n: Option<i64>) -> Self {
        Points { second_val: n, ..Points::default() }
    }
}

impl DataModule for Points {
    fn name(&self) -> &str {
        "points"
    }

    fn setup(&mut self, _ctx: &mut RunContext, _stage: Stage, _hparams: &Value) -> Result<SavedHparams> {
        if self.train.is_none() {
            self.train = Some(points(16)?);
            self.val = Some(points(8)?);
            if let Some(n) = self.second_val {
                self.val2 = Some(points(n)?);
            }
        }
        Ok(SavedHparams::default())
    }

    fn dataset(&mut self, _ctx: &mut RunContext, split: Split, index: u32) -> Result<Option<DatasetSpec>> {
        if index > 0 {
            let Some((x, y)) = self.val2.as_ref().filter(|_| index == 1 && split != Split::Train) else {
                return Ok(None);
            };
            return Ok(Some(DatasetSpec {
                columns: vec![x.shallow_clone(), y.shallow_clone()],
                batch_size: 3,
                shuffle: false,
                drop_last: false,
                sampler: None,
                items: None,
                persistent_workers: false,
            }));
        }
        if split == Split::Train {
            self.train_asks += 1;
            if self.fail_at_train_ask == Some(self.train_asks) {
                anyhow::bail!("the train dataset failed when asked for the {}th time", self.train_asks);
            }
        }
        let (data, shuffle) = match split {
            Split::Train => (&self.train, true),
            Split::Val | Split::Test | Split::Predict => (&self.val, false),
        };
        let Some((x, y)) = data else { return Ok(None) };
        Ok(Some(DatasetSpec {
            columns: vec![x.shallow_clone(), y.shallow_clone()],
            batch_size: 4,
            shuffle,
            drop_last: false,
            sampler: None,
            items: None,
            persistent_workers: false,
        }))
    }
}
