//! LightningCLI's `class_path` + `init_args` for the classes lthost builds in: loggers,
//! callbacks, torch.optim optimizers and lr_schedulers, each mapped onto lthost's settings
//! by Lightning's argument names (with their defaults); an argument lthost has no
//! equivalent for is accepted at its default and named otherwise.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use crate::engine::optim::{
    AdagradConfig, AdamConfig, Algorithm, Interval, OptimizerConfig, RmspropConfig, SchedulerSpec, SgdConfig,
};
use crate::engine::schedulers::{ChainableKind, OneCycleConfig, PlateauConfig, SchedulerKind};

/// A class given as `class_path` (full or short) or as a bare string, and its `init_args`.
pub struct Class {
    pub path: String,
    pub args: Map<String, Value>,
}

impl Class {
    /// `{class_path, init_args, dict_kwargs}` or a class name alone.
    pub fn read(v: &Value, at: &str) -> Result<Class> {
        match v {
            Value::String(s) => Ok(Class { path: s.clone(), args: Map::new() }),
            Value::Object(m) => {
                let path =
                    m.get("class_path").and_then(Value::as_str).ok_or_else(|| anyhow!("{at}: no `class_path`"))?;
                if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "class_path" | "init_args" | "dict_kwargs")) {
                    bail!("{at}: `{k}` beside `class_path` (its arguments go under `init_args`)");
                }
                let mut args = Map::new();
                for part in ["init_args", "dict_kwargs"] {
                    match m.get(part) {
                        Some(Value::Object(a)) => args.extend(a.clone()),
                        Some(Value::Null) | None => {}
                        Some(_) => bail!("{at}.{part}: expected a mapping"),
                    }
                }
                Ok(Class { path: path.to_string(), args })
            }
            _ => bail!("{at}: expected a class name or {{class_path, init_args}}"),
        }
    }

    /// The class's name, when `class_path` is it or a path in one of `packages`.
    pub fn name(&self, packages: &[&str]) -> Option<&str> {
        match self.path.rsplit_once('.') {
            None => Some(&self.path),
            Some((pkg, name)) => {
                packages.iter().any(|p| pkg == *p || pkg.starts_with(&format!("{p}."))).then_some(name)
            }
        }
    }

    /// Takes an argument (None when absent or null).
    fn take(&mut self, k: &str) -> Option<Value> {
        self.args.remove(k).filter(|v| !v.is_null())
    }

    /// An argument lthost has no equivalent for: its default (or absent) only.
    fn only_default(&mut self, k: &str, defaults: &[Value], at: &str) -> Result<()> {
        match self.args.remove(k) {
            Some(v) if !v.is_null() && !defaults.contains(&v) => {
                bail!("{at}: {}'s `{k}: {v}` is not built in lthost (only its default)", self.path)
            }
            _ => Ok(()),
        }
    }

    /// The arguments left, without nulls, as one settings table.
    fn rest(self) -> Value {
        Value::Object(self.args.into_iter().filter(|(_, v)| !v.is_null()).collect())
    }

    fn f64(&mut self, k: &str, default: f64, at: &str) -> Result<f64> {
        match self.take(k) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| anyhow!("{at}: `{k}` = {v}: expected a number")),
        }
    }

    fn i64(&mut self, k: &str, default: Option<i64>, at: &str) -> Result<i64> {
        match self.take(k) {
            None => default.ok_or_else(|| anyhow!("{at}: {} needs `{k}`", self.path)),
            Some(v) => v.as_i64().ok_or_else(|| anyhow!("{at}: `{k}` = {v}: expected an integer")),
        }
    }

    fn bool(&mut self, k: &str, default: bool, at: &str) -> Result<bool> {
        match self.take(k) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| anyhow!("{at}: `{k}` = {v}: expected true or false")),
        }
    }

    fn done(&self, at: &str) -> Result<()> {
        match self.args.keys().next() {
            Some(k) => bail!("{at}: {} has no argument `{k}` that lthost knows", self.path),
            None => Ok(()),
        }
    }
}

const LIGHTNING: &[&str] = &["lightning.pytorch", "pytorch_lightning", "lightning"];
const TORCH_OPTIM: &[&str] = &["torch.optim", "lightning.pytorch.cli"];

/// A logger: lthost's name for it (`csv`, `tensorboard`, `mlflow`) and its `[loggers.<kind>]`.
pub fn logger(mut c: Class, at: &str) -> Result<(&'static str, Value)> {
    let kind = match c.name(LIGHTNING) {
        Some("CSVLogger") => {
            c.args.remove("flush_logs_every_n_steps"); // every row is written as it is logged
            "csv"
        }
        Some("TensorBoardLogger") => {
            c.only_default("log_graph", &[json!(false)], at)?;
            "tensorboard"
        }
        Some("MLFlowLogger") => {
            c.args.remove("synchronous");
            c.only_default("save_dir", &[json!("./mlruns")], at)?;
            "mlflow"
        }
        _ => bail!("{at}: the logger {} is not built in (CSVLogger, TensorBoardLogger, MLFlowLogger; logger plugins go in trainer.loggers of a run file)", c.path),
    };
    Ok((kind, c.rest()))
}

/// A callback: where its settings go in the run table, and them.
pub fn callback(mut c: Class, at: &str) -> Result<(&'static str, Value)> {
    let name = c.name(LIGHTNING).map(str::to_string);
    Ok(match name.as_deref() {
        Some("ModelCheckpoint") => {
            if let Some(t) = c.take("train_time_interval") {
                c.args.insert("train_time_interval_s".into(), json!(seconds(&t, at)?));
            }
            ("checkpoint", c.rest())
        }
        Some("EarlyStopping") => ("early_stopping", c.rest()),
        Some("LearningRateMonitor") => {
            c.only_default("log_weight_decay", &[json!(false)], at)?;
            ("callbacks.lr_monitor", c.rest())
        }
        Some("DeviceStatsMonitor") => ("callbacks.device_stats_monitor", c.rest()),
        Some("GradientAccumulationScheduler") => ("callbacks.gradient_accumulation_scheduler", c.rest()),
        Some("BatchSizeFinder") => ("callbacks.batch_size_finder", c.rest()),
        Some("LearningRateFinder") => {
            if let Some(n) = c.take("num_training_steps") {
                c.args.insert("num_training".into(), n);
            }
            ("callbacks.learning_rate_finder", c.rest())
        }
        Some("OnExceptionCheckpoint") => {
            c.only_default("filename", &[json!("on_exception")], at)?;
            if c.take("dirpath").is_some() {
                eprintln!("note: {at}: OnExceptionCheckpoint writes on_exception.ckpt in ModelCheckpoint's directory in lthost; its dirpath is not used");
            }
            c.done(at)?;
            ("checkpoint.on_exception", json!(true))
        }
        Some("TQDMProgressBar" | "RichProgressBar") => {
            let every = c.i64("refresh_rate", Some(1), at)?;
            c.only_default("process_position", &[json!(0)], at)?;
            c.args.remove("leave");
            c.args.remove("theme");
            c.args.remove("console_kwargs");
            c.done(at)?;
            if every == 0 {
                return Ok(("trainer.enable_progress_bar", json!(false)));
            }
            ("progress_bar", json!({ "every_n_steps": every }))
        }
        Some("ModelSummary" | "RichModelSummary") => {
            c.only_default("max_depth", &[json!(1)], at)?;
            c.done(at)?;
            ("trainer.enable_model_summary", json!(true))
        }
        _ => bail!(
            "{at}: the callback {} is not built in (ModelCheckpoint, EarlyStopping, LearningRateMonitor, DeviceStatsMonitor, \
             GradientAccumulationScheduler, BatchSizeFinder, LearningRateFinder, OnExceptionCheckpoint, TQDMProgressBar, \
             ModelSummary); callback plugins go in [callbacks] plugins of a run file",
            c.path
        ),
    })
}

/// A `timedelta` as LightningCLI writes one (seconds, or its keyword arguments).
fn seconds(v: &Value, at: &str) -> Result<f64> {
    if let Some(s) = v.as_f64() {
        return Ok(s);
    }
    let Some(m) = v.as_object() else { bail!("{at}: train_time_interval = {v}: expected a timedelta's fields") };
    let mut total = 0.0;
    for (k, n) in m {
        let Some(unit) = crate::config::timedelta_unit(k) else { bail!("{at}: {k:?} is not a timedelta field") };
        total += n.as_f64().ok_or_else(|| anyhow!("{at}: {k} = {n}: expected a number"))? * unit;
    }
    Ok(total)
}

/// torch.optim's arguments lthost's optimizers do not take, at their defaults.
fn torch_flags(c: &mut Class, at: &str) -> Result<()> {
    for k in ["foreach", "fused"] {
        c.only_default(k, &[json!(false)], at)?;
    }
    for k in ["maximize", "capturable", "differentiable"] {
        c.only_default(k, &[json!(false)], at)?;
    }
    Ok(())
}

/// `optimizer:` (LightningCLI's `configure_optimizers` override): torch's defaults.
pub fn optimizer(mut c: Class, at: &str) -> Result<OptimizerConfig> {
    let name = c.name(TORCH_OPTIM).map(str::to_string);
    torch_flags(&mut c, at)?;
    let adam = |c: &mut Class, wd: f64| -> Result<AdamConfig> {
        let betas = match c.take("betas") {
            None => (0.9, 0.999),
            Some(Value::Array(b)) if b.len() == 2 && b.iter().all(Value::is_number) => {
                (b[0].as_f64().unwrap_or(0.9), b[1].as_f64().unwrap_or(0.999))
            }
            Some(v) => bail!("{at}: betas = {v}: expected two numbers"),
        };
        Ok(AdamConfig {
            lr: c.f64("lr", 1e-3, at)?,
            betas,
            eps: c.f64("eps", 1e-8, at)?,
            weight_decay: c.f64("weight_decay", wd, at)?,
            amsgrad: c.bool("amsgrad", false, at)?,
        })
    };
    let algorithm = match name.as_deref() {
        Some("SGD") => Algorithm::Sgd(SgdConfig {
            lr: c.f64("lr", 1e-3, at)?,
            momentum: c.f64("momentum", 0.0, at)?,
            dampening: c.f64("dampening", 0.0, at)?,
            weight_decay: c.f64("weight_decay", 0.0, at)?,
            nesterov: c.bool("nesterov", false, at)?,
        }),
        Some("Adam") => {
            // torch 2.13's Adam(decoupled_weight_decay=True) is AdamW.
            let decoupled = c.bool("decoupled_weight_decay", false, at)?;
            let cfg = adam(&mut c, 0.0)?;
            if decoupled {
                Algorithm::AdamW(cfg)
            } else {
                Algorithm::Adam(cfg)
            }
        }
        Some("AdamW") => Algorithm::AdamW(adam(&mut c, 1e-2)?),
        Some("RMSprop") => Algorithm::Rmsprop(RmspropConfig {
            lr: c.f64("lr", 1e-2, at)?,
            alpha: c.f64("alpha", 0.99, at)?,
            eps: c.f64("eps", 1e-8, at)?,
            weight_decay: c.f64("weight_decay", 0.0, at)?,
            momentum: c.f64("momentum", 0.0, at)?,
            centered: c.bool("centered", false, at)?,
        }),
        Some("Adagrad") => Algorithm::Adagrad(AdagradConfig {
            lr: c.f64("lr", 1e-2, at)?,
            lr_decay: c.f64("lr_decay", 0.0, at)?,
            weight_decay: c.f64("weight_decay", 0.0, at)?,
            initial_accumulator_value: c.f64("initial_accumulator_value", 0.0, at)?,
            eps: c.f64("eps", 1e-10, at)?,
        }),
        _ => bail!("{at}: the optimizer {} is not one the host runs (SGD, Adam, AdamW, RMSprop, Adagrad)", c.path),
    };
    c.done(at)?;
    let o = OptimizerConfig::from(algorithm);
    o.validate().map_err(|e| anyhow!("{at}: {}", e.detail))?;
    Ok(o)
}

/// `lr_scheduler:` as LightningCLI's `configure_optimizers` returns it: stepped every epoch,
/// ReduceLROnPlateau on its `monitor`.
pub fn scheduler(mut c: Class, at: &str) -> Result<SchedulerSpec> {
    let name = c.name(TORCH_OPTIM).or_else(|| c.name(&["torch.optim.lr_scheduler"])).map(str::to_string);
    c.only_default("last_epoch", &[json!(-1)], at)?;
    c.only_default("verbose", &[json!(false), json!("deprecated")], at)?;
    let mut monitor = None;
    let kind = match name.as_deref() {
        Some("StepLR") => SchedulerKind::Chainable(ChainableKind::Step {
            step_size: c.i64("step_size", None, at)?,
            gamma: c.f64("gamma", 0.1, at)?,
        }),
        Some("MultiStepLR") => {
            let milestones = match c.take("milestones") {
                Some(Value::Array(m)) => m.iter().map(|x| x.as_i64().ok_or_else(|| anyhow!("{at}: milestones: integers"))).collect::<Result<_>>()?,
                _ => bail!("{at}: MultiStepLR needs `milestones` (a list of epochs)"),
            };
            SchedulerKind::Chainable(ChainableKind::MultiStep { milestones, gamma: c.f64("gamma", 0.1, at)? })
        }
        Some("ExponentialLR") => SchedulerKind::Chainable(ChainableKind::Exponential {
            gamma: c.take("gamma").and_then(|g| g.as_f64()).ok_or_else(|| anyhow!("{at}: ExponentialLR needs `gamma`"))?,
        }),
        Some("CosineAnnealingLR") => SchedulerKind::Chainable(ChainableKind::CosineAnnealing {
            t_max: c.i64("T_max", None, at)?,
            eta_min: c.f64("eta_min", 0.0, at)?,
        }),
        Some("LinearLR") => SchedulerKind::Chainable(ChainableKind::Linear {
            start_factor: c.f64("start_factor", 1.0 / 3.0, at)?,
            end_factor: c.f64("end_factor", 1.0, at)?,
            total_iters: c.i64("total_iters", Some(5), at)?,
        }),
        Some("OneCycleLR") => {
            let total = match (c.take("total_steps"), c.take("epochs"), c.take("steps_per_epoch")) {
                (Some(t), _, _) => t.as_i64().ok_or_else(|| anyhow!("{at}: total_steps: an integer"))?,
                (None, Some(e), Some(s)) => match (e.as_i64(), s.as_i64()) {
                    (Some(e), Some(s)) => e.checked_mul(s).ok_or_else(|| anyhow!("{at}: epochs * steps_per_epoch is too large"))?,
                    _ => bail!("{at}: epochs = {e}, steps_per_epoch = {s}: integers"),
                },
                _ => bail!("{at}: OneCycleLR needs `total_steps`, or `epochs` and `steps_per_epoch`"),
            };
            let anneal = c.take("anneal_strategy").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "cos".into());
            SchedulerKind::OneCycle(OneCycleConfig {
                max_lr: c.take("max_lr").and_then(|v| v.as_f64()).ok_or_else(|| anyhow!("{at}: OneCycleLR needs `max_lr`"))?,
                total_steps: total,
                pct_start: c.f64("pct_start", 0.3, at)?,
                anneal_cos: match anneal.as_str() {
                    "cos" => true,
                    "linear" => false,
                    other => bail!("{at}: anneal_strategy {other:?}: cos or linear"),
                },
                cycle_momentum: c.bool("cycle_momentum", true, at)?,
                base_momentum: c.f64("base_momentum", 0.85, at)?,
                max_momentum: c.f64("max_momentum", 0.95, at)?,
                div_factor: c.f64("div_factor", 25.0, at)?,
                final_div_factor: c.f64("final_div_factor", 1e4, at)?,
                three_phase: c.bool("three_phase", false, at)?,
            })
        }
        Some("ReduceLROnPlateau") => {
            monitor = Some(
                c.take("monitor")
                    .and_then(|m| m.as_str().map(str::to_string))
                    .ok_or_else(|| anyhow!("{at}: Option 'monitor' is required but not provided or its value is None."))?,
            );
            let mode = c.take("mode").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "min".into());
            let threshold_mode =
                c.take("threshold_mode").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "rel".into());
            SchedulerKind::ReduceOnPlateau(PlateauConfig {
                mode_min: match mode.as_str() {
                    "min" => true,
                    "max" => false,
                    other => bail!("{at}: mode {other:?}: min or max"),
                },
                factor: c.f64("factor", 0.1, at)?,
                patience: c.i64("patience", Some(10), at)?,
                threshold: c.f64("threshold", 1e-4, at)?,
                threshold_rel: match threshold_mode.as_str() {
                    "rel" => true,
                    "abs" => false,
                    other => bail!("{at}: threshold_mode {other:?}: rel or abs"),
                },
                cooldown: c.i64("cooldown", Some(0), at)?,
                min_lr: c.f64("min_lr", 0.0, at)?,
                eps: c.f64("eps", 1e-8, at)?,
            })
        }
        _ => bail!(
            "{at}: the lr_scheduler {} is not one the host runs (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, OneCycleLR, ReduceLROnPlateau)",
            c.path
        ),
    };
    c.done(at)?;
    Ok(SchedulerSpec { kind, optimizer: 0, interval: Interval::Epoch, frequency: 1, monitor, strict: true })
}
