//! `--print_config`: the run's settings (run file, flags and `--set` applied) in
//! LightningCLI's layout, keys in Lightning's order, so `--config` reads it back to the
//! same run. lthost's own settings that differ from their defaults go under `lthost:`.

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::yaml::{dump, Node};
use super::CliExtras;
use crate::config::RunConfig;

/// The trainer arguments in `Trainer.__init__`'s order (Lightning 2.6.6).
const TRAINER_ORDER: &[&str] = &[
    "accelerator",
    "strategy",
    "devices",
    "num_nodes",
    "precision",
    "logger",
    "callbacks",
    "fast_dev_run",
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "max_time",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "overfit_batches",
    "val_check_interval",
    "check_val_every_n_epoch",
    "num_sanity_val_steps",
    "log_every_n_steps",
    "enable_checkpointing",
    "enable_progress_bar",
    "enable_model_summary",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "deterministic",
    "benchmark",
    "inference_mode",
    "use_distributed_sampler",
    "profiler",
    "detect_anomaly",
    "barebones",
    "plugins",
    "sync_batchnorm",
    "reload_dataloaders_every_n_epochs",
    "default_root_dir",
    "enable_autolog_hparams",
    "model_registry",
];

/// lthost's trainer settings with no Lightning argument (kept under `lthost: trainer:`).
const TRAINER_OWN: &[&str] =
    &["threads", "prefetch_batches", "ddp_timeout_s", "process_group_backend", "mixed_precision"];

fn to_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn class(path: &str, args: Value) -> Node {
    Node::map(vec![("class_path", Node::leaf(path)), ("init_args", Node::from_json(&args))])
}

/// The keys of `v` whose values differ from `default`'s.
fn changed(v: &Value, default: &Value) -> Map<String, Value> {
    let (Some(v), Some(d)) = (v.as_object(), default.as_object()) else { return Map::new() };
    v.iter().filter(|(k, x)| d.get(*k) != Some(x) && !x.is_null()).map(|(k, x)| (k.clone(), x.clone())).collect()
}

fn strip_nulls(v: Value) -> Value {
    super::strip_nulls(v)
}

pub fn print_config(cfg: &RunConfig, extras: &CliExtras, ckpt_path: Option<&str>) -> Result<String> {
    let t = to_json(&cfg.trainer);
    let mut trainer: Vec<(String, Node)> = Vec::new();
    for &k in TRAINER_ORDER {
        let v = match k {
            "logger" if !cfg.trainer.logger => Node::leaf(false),
            "logger" => loggers(cfg),
            "callbacks" => callbacks(cfg),
            "check_val_every_n_epoch" if t[k].is_string() => Node::leaf(Value::Null),
            "benchmark" | "profiler" | "plugins" | "model_registry" => Node::leaf(Value::Null),
            "detect_anomaly" | "barebones" => Node::leaf(false),
            "use_distributed_sampler" | "enable_autolog_hparams" => Node::leaf(true),
            "strategy" if cfg.trainer.strategy == "ddp_find_unused_parameters_true" => {
                let mut args = json!({ "find_unused_parameters": true });
                if let Some(b) = &cfg.trainer.process_group_backend {
                    args["process_group_backend"] = json!(b);
                }
                class("lightning.pytorch.strategies.DDPStrategy", args)
            }
            _ => Node::from_json(&t[k]),
        };
        trainer.push((k.to_string(), v));
    }
    let seed = match cfg.trainer.seed {
        Some(s) => json!(s),
        // No seed: lthost draws one (and prints it); LightningCLI's `false` does not seed.
        None => json!(false),
    };
    let mut top: Vec<(&str, Node)> = vec![
        ("seed_everything", Node::leaf(seed)),
        ("trainer", Node::Map(trainer)),
        (
            "model",
            if cfg.hparams.is_empty() {
                Node::leaf(Value::Null)
            } else {
                Node::from_json(&Value::Object(cfg.hparams.clone()))
            },
        ),
        ("data", Node::leaf(Value::Null)),
        ("optimizer", extras.optimizer.as_ref().map_or(Node::leaf(Value::Null), Node::from_json)),
        ("lr_scheduler", extras.lr_scheduler.as_ref().map_or(Node::leaf(Value::Null), Node::from_json)),
        ("ckpt_path", Node::leaf(ckpt_path.map_or(Value::Null, |p| json!(p)))),
        ("weights_only", Node::leaf(Value::Null)),
    ];
    let own = own_settings(cfg);
    if !own.is_empty() {
        top.push(("lthost", Node::from_json(&Value::Object(own))));
    }
    let header = format!(
        "# lthost {} — LightningCLI's layout (lightning.pytorch 2.6.6): lthost fit PLUGIN --config THIS\n",
        env!("CARGO_PKG_VERSION")
    );
    Ok(header + &dump(&Node::map(top)))
}

fn loggers(cfg: &RunConfig) -> Node {
    let mut out = Vec::new();
    for kind in &cfg.trainer.loggers {
        let (path, mut args) = match kind.as_str() {
            "csv" => ("lightning.pytorch.loggers.CSVLogger", to_json(&cfg.loggers.csv.clone().unwrap_or_default())),
            "tensorboard" => (
                "lightning.pytorch.loggers.TensorBoardLogger",
                to_json(&cfg.loggers.tensorboard.clone().unwrap_or_default()),
            ),
            "mlflow" => {
                ("lightning.pytorch.loggers.MLFlowLogger", to_json(&cfg.loggers.mlflow.clone().unwrap_or_default()))
            }
            other => {
                eprintln!("note: the logger plugin {other} has no LightningCLI form; it is not in the printed config");
                continue;
            }
        };
        if kind == "csv" {
            if let Some(m) = args.as_object_mut() {
                m.remove("default_hp_metric");
                m.remove("sub_dir");
            }
        }
        out.push(class(path, args));
    }
    Node::List(out)
}

fn callbacks(cfg: &RunConfig) -> Node {
    let mut out = Vec::new();
    let mut mc = to_json(&cfg.checkpoint);
    let on_exception = mc.get("on_exception").and_then(Value::as_bool).unwrap_or(false);
    if let Some(m) = mc.as_object_mut() {
        m.remove("on_exception");
        if let Some(s) = m.remove("train_time_interval_s") {
            m.insert("train_time_interval".into(), s);
        }
    }
    out.push(class("lightning.pytorch.callbacks.ModelCheckpoint", mc));
    if on_exception {
        out.push(class("lightning.pytorch.callbacks.OnExceptionCheckpoint", json!({ "filename": "on_exception" })));
    }
    if let Some(es) = &cfg.early_stopping {
        out.push(class("lightning.pytorch.callbacks.EarlyStopping", to_json(es)));
    }
    let b = &cfg.callbacks;
    if let Some(c) = &b.lr_monitor {
        out.push(class("lightning.pytorch.callbacks.LearningRateMonitor", to_json(c)));
    }
    if let Some(c) = &b.device_stats_monitor {
        out.push(class("lightning.pytorch.callbacks.DeviceStatsMonitor", to_json(c)));
    }
    if let Some(c) = &b.gradient_accumulation_scheduler {
        out.push(class("lightning.pytorch.callbacks.GradientAccumulationScheduler", to_json(c)));
    }
    if let Some(c) = &b.batch_size_finder {
        out.push(class("lightning.pytorch.callbacks.BatchSizeFinder", to_json(c)));
    }
    if let Some(c) = &b.learning_rate_finder {
        let mut args = to_json(c);
        if let Some(m) = args.as_object_mut() {
            if let Some(n) = m.remove("num_training") {
                m.insert("num_training_steps".into(), n);
            }
        }
        out.push(class("lightning.pytorch.callbacks.LearningRateFinder", args));
    }
    if b.throughput_monitor.is_some() || !b.plugins.is_empty() {
        eprintln!(
            "note: ThroughputMonitor and callback plugins have no LightningCLI form here; they are under `lthost:`"
        );
    }
    Node::List(out)
}

/// lthost's own settings that differ from their defaults, as the run file's tables; paths
/// absolute (a config file's relative paths are taken relative to it when read back).
fn own_settings(cfg: &RunConfig) -> Map<String, Value> {
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut cfg = cfg.clone();
    cfg.plugin.data_dir = cfg.plugin.data_dir.as_deref().map(absolute);
    cfg.plugin.trusted_keys = cfg.plugin.trusted_keys.iter().map(|p| absolute(p)).collect();
    cfg.callbacks.plugins = cfg.callbacks.plugins.iter().map(|p| absolute(p)).collect();
    let cfg = &cfg;
    let d = RunConfig::default();
    let mut own = Map::new();
    let t = changed(&to_json(&cfg.trainer), &to_json(&d.trainer));
    let t: Map<String, Value> = t.into_iter().filter(|(k, _)| TRAINER_OWN.contains(&k.as_str())).collect();
    if !t.is_empty() {
        own.insert("trainer".into(), Value::Object(t));
    }
    for (name, v, dv) in [
        ("plugin", to_json(&cfg.plugin), to_json(&d.plugin)),
        ("progress_bar", to_json(&cfg.progress_bar), to_json(&d.progress_bar)),
        ("lr_find", to_json(&cfg.lr_find), to_json(&d.lr_find)),
        ("scale_batch_size", to_json(&cfg.scale_batch_size), to_json(&d.scale_batch_size)),
    ] {
        let c = changed(&v, &dv);
        if !c.is_empty() {
            own.insert(name.into(), strip_nulls(Value::Object(c)));
        }
    }
    let mut cb = Map::new();
    if let Some(c) = &cfg.callbacks.throughput_monitor {
        cb.insert("throughput_monitor".into(), to_json(c));
    }
    if !cfg.callbacks.plugins.is_empty() {
        cb.insert("plugins".into(), to_json(&cfg.callbacks.plugins));
    }
    if !cb.is_empty() {
        own.insert("callbacks".into(), Value::Object(cb));
    }
    own
}
