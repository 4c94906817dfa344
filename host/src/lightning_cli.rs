//! LightningCLI's YAML configs: `lthost fit --config config.yaml` reads LightningCLI's layout
//! (`seed_everything`, `trainer:` with Lightning's argument names, `callbacks`/`logger` as
//! `class_path` + `init_args`, `model:`/`data:` init args as hyper-parameters,
//! `optimizer:`/`lr_scheduler:`, `ckpt_path`) into the run's settings, and
//! `--print_config` writes the run's settings in that layout. What cannot be mapped is
//! named. Settings Lightning has no argument for (the sandbox's: `plugin.data_dir`, limits,
//! trusted keys; `trainer.threads`) go in an `lthost:` section with the run file's tables.

pub mod classes;
pub mod print;
pub mod yaml;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use crate::module::Optimization;
use classes::Class;

/// What a LightningCLI config says beside the run's settings.
#[derive(Debug, Clone, Default)]
pub struct CliExtras {
    /// `optimizer:` (and `lr_scheduler:`): LightningCLI's `configure_optimizers` override.
    pub optimization: Option<Optimization>,
    /// The override as written (printed back by `--print_config`).
    pub optimizer: Option<Value>,
    pub lr_scheduler: Option<Value>,
    pub ckpt_path: Option<String>,
}

/// Whether a config file is LightningCLI YAML (by its extension).
pub fn is_yaml(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// Trainer arguments with the same name and meaning in lthost's `[trainer]`.
const SAME: &[&str] = &[
    "accelerator",
    "devices",
    "num_nodes",
    "precision",
    "fast_dev_run",
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
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
    "inference_mode",
    "sync_batchnorm",
    "reload_dataloaders_every_n_epochs",
    "default_root_dir",
    "overfit_batches",
];
/// `Union[float, int]` in Lightning's signature: LightningCLI reads `1` as `1.0` (all batches).
const LIMITS: &[&str] = &["limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches"];

/// The run table (as a TOML run file's) and the extras a LightningCLI config stands for.
pub fn to_run_table(text: &str, shown: &str) -> Result<(toml::Table, CliExtras)> {
    to_run_table_seeded(text, shown, None)
}

/// As [`to_run_table`], with LightningCLI's `seed_everything_default` (None: `true`), the seed
/// a config without `seed_everything` runs with: a plugin's own default seed (the file's
/// `LightningCLI(..., seed_everything_default=)` or `seed_everything(n)`).
pub fn to_run_table_seeded(text: &str, shown: &str, seed_default: Option<Value>) -> Result<(toml::Table, CliExtras)> {
    let doc = match yaml::parse(text, shown)? {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        _ => bail!("{shown}: a LightningCLI config is a mapping (seed_everything, trainer, model, ...)"),
    };
    let mut doc = subcommand_arguments(doc);
    if let Some(seed) = seed_default {
        doc.entry("seed_everything").or_insert(seed);
    }
    doc_to_run_table(doc, shown, Layout::Cli)
}

/// A config of the whole CLI (`fit:` / `validate:` ... around the arguments): the arguments.
fn subcommand_arguments(doc: Map<String, Value>) -> Map<String, Value> {
    if doc.len() == 1 {
        if let Some((k, Value::Object(inner))) = doc.iter().next() {
            if matches!(k.as_str(), "fit" | "validate" | "test" | "predict") {
                return inner.clone();
            }
        }
    }
    doc
}

/// Who wrote a config in LightningCLI's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A LightningCLI config: without `seed_everything` it seeds (LightningCLI's default), and
    /// a limit of `1` reads as `1.0` (`Union[float, int]` through jsonargparse).
    Cli,
    /// What a file's code gives Lightning (`main_block.rs`): no seeding unless asked, and
    /// numbers as Python passed them (`limit_train_batches=1` is one batch).
    Code,
}

/// As [`to_run_table`], from the config as JSON.
pub fn doc_to_run_table(doc: Map<String, Value>, shown: &str, layout: Layout) -> Result<(toml::Table, CliExtras)> {
    let doc = subcommand_arguments(doc);
    let mut run = json!({ "trainer": {}, "hparams": {} });
    let mut extras = CliExtras::default();
    // LightningCLI's `seed_everything_default=True`: a config without the key seeds.
    if layout == Layout::Cli && !doc.contains_key("seed_everything") {
        seed(&mut run, &Value::Bool(true), shown)?;
    }
    for (key, v) in &doc {
        match key.as_str() {
            "seed_everything" => seed(&mut run, v, shown)?,
            "trainer" => trainer(&mut run, v, shown, layout)?,
            "model" | "data" => hparams(&mut run, v, &format!("{shown}: {key}"))?,
            "optimizer" if !v.is_null() => extras.optimizer = Some(v.clone()),
            "lr_scheduler" if !v.is_null() => extras.lr_scheduler = Some(v.clone()),
            "ckpt_path" => extras.ckpt_path = v.as_str().map(str::to_string),
            "optimizer" | "lr_scheduler" | "weights_only" | "lthost" => {}
            other => bail!(
                "{shown}: `{other}` is not a LightningCLI key (seed_everything, trainer, model, data, optimizer, lr_scheduler, ckpt_path, weights_only; lthost's own settings under `lthost:`)"
            ),
        }
    }
    match (&extras.optimizer, &extras.lr_scheduler) {
        (Some(o), sched) => {
            let opt = classes::optimizer(Class::read(o, "optimizer")?, &format!("{shown}: optimizer"))?;
            let schedulers = match sched {
                Some(s) => vec![classes::scheduler(Class::read(s, "lr_scheduler")?, &format!("{shown}: lr_scheduler"))?],
                None => Vec::new(),
            };
            extras.optimization = Some(Optimization { optimizers: vec![opt], schedulers, automatic: true });
        }
        (None, Some(_)) => eprintln!(
            "warning: {shown}: lr_scheduler without optimizer is not used (LightningCLI uses it only with its optimizer); the module's configure_optimizers decides"
        ),
        (None, None) => {}
    }
    let mut table: toml::Table =
        toml::Table::try_from(run).map_err(|e| anyhow!("{shown}: {}", e.to_string().trim()))?;
    // `lthost:`: the run file's own tables, over what the Lightning keys said.
    if let Some(own) = doc.get("lthost").filter(|v| !v.is_null()) {
        let own: toml::Table = toml::Table::try_from(strip_nulls(own.clone()))
            .map_err(|e| anyhow!("{shown}: lthost: {}", e.to_string().trim()))?;
        merge(&mut table, own);
    }
    Ok((table, extras))
}

/// `from`'s settings over `into`'s (tables merged key by key, anything else replaced).
pub fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// LightningCLI's `seed_everything`: an int, `true` (Lightning's `seed_everything()`:
/// `PL_GLOBAL_SEED`, else 0) or `false` (no seeding).
fn seed(run: &mut Value, v: &Value, shown: &str) -> Result<()> {
    let s = match v {
        Value::Bool(false) => return Ok(()),
        Value::Bool(true) => match std::env::var("PL_GLOBAL_SEED").ok() {
            Some(s) => match s.trim().parse::<u32>() {
                Ok(v) => u64::from(v),
                Err(_) => {
                    eprintln!("warning: Invalid seed found: {s:?}, seed set to 0");
                    0
                }
            },
            None => {
                eprintln!("warning: No seed found, seed set to 0");
                0
            }
        },
        // Lightning's seed_everything: out of numpy's bounds (0 to 2**32 - 1) is 0, with its warning.
        Value::Number(n) => match n.as_u64().filter(|s| *s <= u64::from(u32::MAX)) {
            Some(s) => s,
            None if n.is_i64() || n.is_u64() => {
                eprintln!("warning: {n} is not in bounds, numpy accepts from 0 to 4294967295");
                0
            }
            None => bail!("{shown}: seed_everything = {n}: an integer, true or false"),
        },
        other => bail!("{shown}: seed_everything = {other}: an integer, true or false"),
    };
    run["trainer"]["seed"] = json!(s);
    Ok(())
}

fn put(run: &mut Value, path: &str, v: Value, shown: &str) -> Result<()> {
    let mut node = run;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        if node.get(*p).is_none() {
            node[*p] = json!({});
        }
        node = &mut node[*p];
    }
    let last = parts[parts.len() - 1];
    match (node.get_mut(last), v) {
        (None, v) => node[last] = v,
        (Some(_), v) if matches!(path, "trainer.enable_model_summary" | "trainer.enable_progress_bar") => {
            node[last] = v
        }
        // OnExceptionCheckpoint's switch and ModelCheckpoint's arguments share `[checkpoint]`.
        (Some(Value::Object(have)), Value::Object(more)) if !more.keys().any(|k| have.contains_key(k)) => {
            have.extend(more)
        }
        _ => bail!("{shown}: two callbacks or loggers set `{path}`; lthost builds one of each"),
    }
    Ok(())
}

fn trainer(run: &mut Value, v: &Value, shown: &str, layout: Layout) -> Result<()> {
    let Some(t) = v.as_object() else {
        if v.is_null() {
            return Ok(());
        }
        bail!("{shown}: trainer: expected a mapping of Trainer arguments")
    };
    for (k, v) in t {
        let at = format!("{shown}: trainer.{k}");
        match (k.as_str(), v) {
            ("check_val_every_n_epoch", Value::Null) => run["trainer"][k] = json!("none"),
            (_, Value::Null) => {}
            (k, v) if SAME.contains(&k) => {
                if k == "devices" && v.is_array() {
                    bail!("{at}: a list of device indices is not built; give a count of processes per node");
                }
                if k == "deterministic" && v.is_string() {
                    bail!("{at} = {v}: \"warn\" is not built; true or false");
                }
                run["trainer"][k] = v.clone();
            }
            (k, v) if LIMITS.contains(&k) => {
                let v = match v.as_i64() {
                    Some(1) if layout == Layout::Cli => {
                        eprintln!("note: {at}: 1 reads as 1.0 (every batch), as LightningCLI reads `Union[float, int]`; 1 batch is not expressible there");
                        json!(1.0)
                    }
                    _ => v.clone(),
                };
                run["trainer"][k] = v;
            }
            ("max_time", Value::Object(parts)) => {
                let secs = parts.iter().try_fold(0u64, |acc, (unit, n)| {
                    let n = n.as_u64().ok_or_else(|| anyhow!("{at}: {unit} = {n}: an integer"))?;
                    let mul = match unit.as_str() {
                        "days" => 86_400,
                        "hours" => 3_600,
                        "minutes" => 60,
                        "seconds" => 1,
                        _ => bail!("{at}: {unit:?}: days, hours, minutes or seconds"),
                    };
                    n.checked_mul(mul).and_then(|v| v.checked_add(acc)).ok_or_else(|| anyhow!("{at}: too long"))
                })?;
                let (d, r) = (secs / 86_400, secs % 86_400);
                run["trainer"]["max_time"] =
                    json!(format!("{d:02}:{:02}:{:02}:{:02}", r / 3600, r % 3600 / 60, r % 60));
            }
            ("max_time", v) => run["trainer"]["max_time"] = v.clone(),
            ("strategy", Value::String(s)) => run["trainer"]["strategy"] = json!(s),
            ("strategy", v) => strategy(run, v, &at)?,
            ("logger", Value::Bool(b)) => run["trainer"]["logger"] = json!(b),
            ("logger", v) => {
                let list = if let Value::Array(a) = v { a.clone() } else { vec![v.clone()] };
                let mut kinds = Vec::new();
                for (i, l) in list.iter().enumerate() {
                    let (kind, args) = classes::logger(Class::read(l, &format!("{at}[{i}]"))?, &format!("{at}[{i}]"))?;
                    put(run, &format!("loggers.{kind}"), args, shown)?;
                    kinds.push(kind);
                }
                run["trainer"]["loggers"] = json!(kinds);
            }
            ("callbacks", v) => {
                let list = if let Value::Array(a) = v { a.clone() } else { vec![v.clone()] };
                let mut seen = Vec::new();
                for (i, c) in list.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    let class = Class::read(c, &at)?;
                    let name = class.path.rsplit('.').next().unwrap_or("").to_string();
                    if seen.contains(&name) {
                        bail!("{at}: a second {name}; lthost builds one of each callback");
                    }
                    seen.push(name);
                    let (path, args) = classes::callback(class, &at)?;
                    put(run, path, args, shown)?;
                }
            }
            // Lightning's arguments lthost has no switch for, at their defaults.
            ("benchmark" | "detect_anomaly" | "barebones", Value::Bool(false)) => {}
            ("use_distributed_sampler" | "enable_autolog_hparams", Value::Bool(true)) => {}
            (
                "benchmark"
                | "detect_anomaly"
                | "barebones"
                | "use_distributed_sampler"
                | "enable_autolog_hparams"
                | "profiler"
                | "plugins"
                | "model_registry",
                v,
            ) => bail!("{at} = {v}: not built in lthost (this Trainer argument only at its default)"),
            _ => bail!("{at}: not an argument of Lightning 2.6's Trainer"),
        }
    }
    Ok(())
}

/// `strategy: {class_path: DDPStrategy, init_args: {...}}`.
fn strategy(run: &mut Value, v: &Value, at: &str) -> Result<()> {
    let mut c = Class::read(v, at)?;
    match c.name(&["lightning.pytorch", "pytorch_lightning", "lightning"]) {
        Some("DDPStrategy") => {}
        _ => bail!("{at}: the strategy {} is not built (\"auto\", \"ddp\", \"single_device\", DDPStrategy)", c.path),
    }
    let unused = c.args.remove("find_unused_parameters").and_then(|v| v.as_bool()).unwrap_or(false);
    run["trainer"]["strategy"] = json!(if unused { "ddp_find_unused_parameters_true" } else { "ddp" });
    if let Some(b) = c.args.remove("process_group_backend").filter(|b| !b.is_null()) {
        run["trainer"]["process_group_backend"] = b;
    }
    if let Some(k) = c.args.iter().find(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()) {
        bail!("{at}: DDPStrategy's `{k}` is not built in lthost");
    }
    Ok(())
}

/// `model:` / `data:`: init args (flat, or `class_path` + `init_args`) as hyper-parameters.
fn hparams(run: &mut Value, v: &Value, at: &str) -> Result<()> {
    let args = match v {
        Value::Null => return Ok(()),
        Value::Object(m) if m.contains_key("class_path") => Class::read(v, at)?.args,
        Value::Object(m) => m.clone(),
        _ => bail!("{at}: expected the class's init args as a mapping"),
    };
    for (k, v) in args {
        if v.is_null() {
            continue;
        }
        match run["hparams"].get(&k) {
            Some(old) if *old != v => bail!("{at}: `{k}` is {v} here and {old} in the other of model/data (Lightning's \"Error while merging hparams\")"),
            _ => run["hparams"][&k] = v,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_from_lightnings_docs_maps_onto_the_run() {
        let text = "\
seed_everything: 7
trainer:
  max_epochs: 3
  limit_train_batches: 1
  limit_val_batches: 10
  check_val_every_n_epoch: null
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: logs
      flush_logs_every_n_steps: 100
  callbacks:
    - class_path: lightning.pytorch.callbacks.EarlyStopping
      init_args:
        patience: 5
        monitor: val_loss
    - class_path: ModelCheckpoint
      init_args:
        monitor: val_loss
        save_top_k: 2
        train_time_interval: null
    - class_path: lightning.pytorch.callbacks.LearningRateMonitor
      init_args:
        logging_interval: epoch
model:
  hidden: 64
data:
  batch_size: 32
optimizer:
  class_path: torch.optim.AdamW
  init_args:
    lr: 0.01
lr_scheduler:
  class_path: torch.optim.lr_scheduler.StepLR
  init_args:
    step_size: 2
ckpt_path: last
";
        let (t, extras) = to_run_table(text, "t.yaml").unwrap();
        assert_eq!(t["trainer"]["seed"].as_integer(), Some(7));
        assert_eq!(t["trainer"]["limit_train_batches"].as_float(), Some(1.0));
        assert_eq!(t["trainer"]["limit_val_batches"].as_integer(), Some(10));
        assert_eq!(t["trainer"]["check_val_every_n_epoch"].as_str(), Some("none"));
        assert_eq!(t["trainer"]["loggers"].as_array().unwrap()[0].as_str(), Some("csv"));
        assert_eq!(t["loggers"]["csv"]["save_dir"].as_str(), Some("logs"));
        assert_eq!(t["early_stopping"]["patience"].as_integer(), Some(5));
        assert_eq!(t["checkpoint"]["save_top_k"].as_integer(), Some(2));
        assert_eq!(t["callbacks"]["lr_monitor"]["logging_interval"].as_str(), Some("epoch"));
        assert_eq!(
            (t["hparams"]["hidden"].as_integer(), t["hparams"]["batch_size"].as_integer()),
            (Some(64), Some(32))
        );
        let o = extras.optimization.unwrap();
        assert!(matches!(&o.optimizers[0].algorithm, Algorithm::AdamW(c) if c.lr == 0.01 && c.weight_decay == 0.01));
        assert_eq!(o.schedulers[0].interval, crate::engine::optim::Interval::Epoch);
        assert_eq!(extras.ckpt_path.as_deref(), Some("last"));
        for (bad, needle) in [
            ("trainer:\n  profiler: simple\n", "not built"),
            ("trainer:\n  max_epoch: 3\n", "not an argument of Lightning"),
            ("trainer:\n  callbacks:\n    - class_path: my.Callback\n", "not built in"),
            ("optimizer: torch.optim.LBFGS\n", "not one the host runs"),
            ("optimizer: Adam\nlr_scheduler:\n  class_path: ReduceLROnPlateau\n", "monitor"),
            ("model:\n  a: 1\ndata:\n  a: 2\n", "merging hparams"),
            ("trainr: {}\n", "not a LightningCLI key"),
            ("a: &x [1, 2]\nb: *x\n", "line 2: a YAML alias"),
            ("optimizer:\n  class_path: torch.optim.SGD\n  init_args:\n    lr: 0.1\n    fused: true\n", "fused"),
        ] {
            let e = to_run_table(bad, "t.yaml").unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn lightning_cli_defaults_and_shared_tables() {
        // No seed_everything: LightningCLI's default `true` (PL_GLOBAL_SEED, else 0).
        if std::env::var_os("PL_GLOBAL_SEED").is_none() {
            let (t, _) = to_run_table("trainer:\n  max_epochs: 1\n", "t.yaml").unwrap();
            assert_eq!(t["trainer"]["seed"].as_integer(), Some(0));
        }
        let (t, _) = to_run_table("seed_everything: false\n", "t.yaml").unwrap();
        assert!(t["trainer"].get("seed").is_none());
        let (t, _) = to_run_table("seed_everything: -3\n", "t.yaml").unwrap();
        assert_eq!(t["trainer"]["seed"].as_integer(), Some(0));
        // OnExceptionCheckpoint before ModelCheckpoint: both in [checkpoint].
        let text = "trainer:\n  callbacks:\n  - class_path: OnExceptionCheckpoint\n    init_args: {dirpath: x}\n  - class_path: ModelCheckpoint\n    init_args: {save_top_k: 3}\n  - class_path: TQDMProgressBar\n    init_args: {refresh_rate: 0}\n";
        let (t, _) = to_run_table(text, "t.yaml").unwrap();
        assert_eq!(t["checkpoint"]["on_exception"].as_bool(), Some(true));
        assert_eq!(t["checkpoint"]["save_top_k"].as_integer(), Some(3));
        assert_eq!(t["trainer"]["enable_progress_bar"].as_bool(), Some(false));
        let two = "trainer:\n  callbacks:\n  - class_path: ModelCheckpoint\n  - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n    init_args: {save_top_k: 3}\n";
        assert!(to_run_table(two, "t.yaml").unwrap_err().to_string().contains("a second ModelCheckpoint"));
    }

    use crate::engine::optim::Algorithm;
}
