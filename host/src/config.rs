//! Run configuration: a TOML file (`--config run.toml`) with `[trainer]`, `[plugin]` and
//! `[hparams]` tables, overridden by command-line flags. Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connectors::accelerator::Accelerator;
use crate::plugin::PluginOptions;

/// A batch limit or interval: an integer count of batches, or a float fraction of the
/// dataloader (Lightning's `int | float` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Limit {
    Batches(u64),
    Fraction(f64),
}

impl Limit {
    /// How many of `n` batches this limit allows: `min(n, k)` or `int(n * f)`, as Lightning.
    /// Of [`UNBOUNDED`](crate::module::UNBOUNDED) batches (a stream of unknown length) only
    /// an int or 1.0 can be taken, as Lightning refuses any other fraction.
    pub fn apply(self, n: usize, what: &str) -> Result<usize> {
        if n == crate::module::UNBOUNDED {
            return match self {
                Limit::Batches(k) => Ok(usize::try_from(k).unwrap_or(n)),
                Limit::Fraction(f) if f == 1.0 => Ok(n),
                Limit::Fraction(f) => bail!(
                    "{what} = {f}: a DataLoader of unknown length (an IterableDataset without __len__) takes `{what}` as 1.0 or an int (a number of batches), as Lightning does"
                ),
            };
        }
        match self {
            Limit::Batches(k) => Ok(n.min(k as usize)),
            Limit::Fraction(f) => {
                if !(0.0..=1.0).contains(&f) {
                    bail!("{what} = {f}: a fraction must be in [0.0, 1.0]");
                }
                let m = (n as f64 * f) as usize;
                if m == 0 && f > 0.0 && n > 0 {
                    bail!("{what} = {f} of {n} batches is 0 batches; use a larger fraction or an integer");
                }
                Ok(m)
            }
        }
    }

    pub fn is_zero(self) -> bool {
        matches!(self, Limit::Batches(0)) || matches!(self, Limit::Fraction(f) if f == 0.0)
    }
}

/// `val_check_interval`: a number of batches or a fraction of the epoch, or a wall-clock
/// interval (Lightning 2.6): `"DD:HH:MM:SS"` or a table of timedelta's keywords
/// (`{ minutes = 30 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValCheckInterval {
    Every(Limit),
    Time(String),
    TimeParts(BTreeMap<String, f64>),
}

impl ValCheckInterval {
    /// The batch-based interval, None when validation goes by time.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            ValCheckInterval::Every(l) => Some(*l),
            _ => None,
        }
    }

    /// The seconds between validations when they go by time (Lightning's
    /// `_parse_time_interval_seconds`).
    pub fn seconds(&self) -> Result<Option<f64>> {
        match self {
            ValCheckInterval::Every(_) => Ok(None),
            ValCheckInterval::Time(s) => Ok(Some(
                parse_max_time(s)
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "trainer.val_check_interval = {s:?}: expected \"DD:HH:MM:SS\" with integer fields"
                        )
                    })?
                    .as_secs_f64(),
            )),
            ValCheckInterval::TimeParts(parts) => {
                let mut total = 0.0;
                for (k, v) in parts {
                    let Some(unit) = timedelta_unit(k) else {
                        bail!("trainer.val_check_interval: {k:?} is not a timedelta field (weeks, days, hours, minutes, seconds, milliseconds, microseconds)")
                    };
                    total += v * unit;
                }
                if !(total.is_finite() && total >= 0.0) {
                    bail!("trainer.val_check_interval: the interval must be a non-negative time");
                }
                Ok(Some(total))
            }
        }
    }
}

/// Seconds in one unit of a `datetime.timedelta` keyword (`hours` → 3600).
pub fn timedelta_unit(k: &str) -> Option<f64> {
    Some(match k {
        "weeks" => 604_800.0,
        "days" => 86_400.0,
        "hours" => 3_600.0,
        "minutes" => 60.0,
        "seconds" => 1.0,
        "milliseconds" => 1e-3,
        "microseconds" => 1e-6,
        _ => return None,
    })
}

/// `fast_dev_run`: true (1 batch) or a number of batches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FastDevRun {
    Flag(bool),
    Batches(u64),
}

impl FastDevRun {
    pub fn batches(self) -> Option<u64> {
        match self {
            FastDevRun::Flag(true) => Some(1),
            FastDevRun::Flag(false) | FastDevRun::Batches(0) => None,
            FastDevRun::Batches(n) => Some(n),
        }
    }
}

/// `check_val_every_n_epoch`: a number of epochs, or "none" (count batches across epochs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EveryNEpochs {
    Epochs(u64),
    Named(String),
}

impl EveryNEpochs {
    pub fn epochs(&self) -> Result<Option<u64>> {
        match self {
            EveryNEpochs::Epochs(0) => bail!("trainer.check_val_every_n_epoch must be at least 1 (or \"none\")"),
            EveryNEpochs::Epochs(n) => Ok(Some(*n)),
            EveryNEpochs::Named(s) if s.eq_ignore_ascii_case("none") => Ok(None),
            EveryNEpochs::Named(s) => bail!("trainer.check_val_every_n_epoch = {s:?}: expected a number or \"none\""),
        }
    }
}

/// Lightning's `devices`: a count or "auto".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Devices {
    Count(i64),
    Named(String),
}

impl Devices {
    /// Processes per node: "auto" is 1 (Lightning's CPU accelerator), a count must be positive.
    pub fn count(&self) -> Result<usize> {
        match self {
            Devices::Count(n) if *n >= 1 => Ok(*n as usize),
            Devices::Named(s) if s == "auto" => Ok(1),
            Devices::Named(s) if s.trim().parse::<usize>().is_ok_and(|n| n >= 1) => Ok(s.trim().parse().unwrap_or(1)),
            other => bail!("`devices` must be a positive number of processes per node or \"auto\", got {other:?}"),
        }
    }
}

/// Lightning's Trainer arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    /// Stop after this many epochs; -1: no epoch limit. Unset: 1000 when neither max_steps
    /// nor max_time is set, else no epoch limit (Lightning).
    pub max_epochs: Option<i64>,
    pub min_epochs: Option<u64>,
    /// Stop after this many optimizer steps (-1: no limit).
    pub max_steps: i64,
    pub min_steps: Option<u64>,
    /// Stop after this much time, "DD:HH:MM:SS".
    pub max_time: Option<String>,
    pub limit_train_batches: Limit,
    pub limit_val_batches: Limit,
    pub limit_test_batches: Limit,
    pub limit_predict_batches: Limit,
    /// Validate every k batches (integer) or every fraction of an epoch (float).
    /// None: not given (Lightning's None: once per epoch, `1.0`).
    pub val_check_interval: Option<ValCheckInterval>,
    pub check_val_every_n_epoch: EveryNEpochs,
    /// Validation batches run before training (-1: all, 0: none).
    pub num_sanity_val_steps: i64,
    pub fast_dev_run: FastDevRun,
    /// Train and validate on this many (or this fraction of) batches, unshuffled.
    pub overfit_batches: Limit,
    pub accumulate_grad_batches: u64,
    pub gradient_clip_val: Option<f64>,
    /// "norm" (2-norm) or "value".
    pub gradient_clip_algorithm: String,
    /// `torch.use_deterministic_algorithms(True)` and cuDNN benchmarking off.
    pub deterministic: bool,
    /// Evaluate under `torch.inference_mode` (true, Lightning's default) or `no_grad`.
    pub inference_mode: bool,
    /// `auto`, `cpu` or `cuda`.
    pub accelerator: String,
    /// Lightning's `strategy`: "auto" (DDP when more than one process), "ddp" or
    /// "single_device".
    pub strategy: String,
    /// Lightning's `devices`: processes per node (a count, or "auto": 1 on the CPU).
    pub devices: Devices,
    /// Lightning's `num_nodes`.
    pub num_nodes: usize,
    /// How long a rank waits for the others in a collective before the run fails, in
    /// seconds (Lightning's `DDPStrategy(timeout=...)`, torch's default 30 minutes).
    pub ddp_timeout_s: f64,
    /// Lightning's `DDPStrategy(process_group_backend=...)`: "nccl" or "gloo" for CUDA
    /// tensors' collectives; unset, "nccl" on CUDA and "gloo" on the CPU (torch's defaults).
    pub process_group_backend: Option<String>,
    /// Lightning's `sync_batchnorm`: under DDP, BatchNorm layers in training normalise with the
    /// statistics of every rank's batch (torch's SyncBatchNorm; on the CPU too).
    pub sync_batchnorm: bool,
    /// Lightning's `precision`: "32-true" (default), "64-true", "bf16-true", "16-true",
    /// "bf16-mixed", "16-mixed", or its aliases (64, 32, 16, "bf16").
    pub precision: crate::precision::PrecisionFlag,
    /// Lightning's `plugins=[MixedPrecision(precision, device, scaler=GradScaler(...))]`
    /// (`[trainer.mixed_precision]`): mixed precision given as a plugin, `16-mixed` on the CPU
    /// included, with the scaler's arguments.
    pub mixed_precision: Option<crate::precision::MixedPrecisionConfig>,
    /// Seed for libtorch's generators; unset: a random seed, printed.
    pub seed: Option<u64>,
    /// libtorch intra-op threads; unset: 1 on up to 2 cores, else half the cores (at most 8).
    pub threads: Option<usize>,
    /// 0 disables step-level logging.
    pub log_every_n_steps: u64,
    pub enable_progress_bar: bool,
    pub enable_model_summary: bool,
    /// Logs go to `<default_root_dir>/lightning_logs/version_N`.
    pub default_root_dir: PathBuf,
    /// Write logs at all.
    pub logger: bool,
    /// Which loggers: "csv", "tensorboard", logger plugins (`.wasm` paths); several at once.
    pub loggers: Vec<String>,
    /// ModelCheckpoint (configured in `[checkpoint]`).
    pub enable_checkpointing: bool,
    /// Batches a background thread gathers ahead of the model (0: gathered when needed).
    /// Unset: 0 on machines of up to 2 cores (there the hand-off costs more than gathering
    /// a small batch: digits 0.28 s → 0.34 s for 600 steps), else 2.
    pub prefetch_batches: Option<usize>,
    /// Ask the DataModule for the train and validation DataLoaders again every this many
    /// epochs (0: once).
    pub reload_dataloaders_every_n_epochs: i64,
    /// A LightningCLI config's `optimizer:`/`lr_scheduler:`: replaces what the module's
    /// `configure_optimizers` returns (LightningCLI's override; not in run files).
    #[serde(skip)]
    pub optimizer_override: Option<crate::module::Optimization>,
}

impl TrainerConfig {
    /// `val_check_interval`, Lightning's default (`1.0`: once per epoch) when not given.
    pub fn val_check_interval(&self) -> ValCheckInterval {
        self.val_check_interval.clone().unwrap_or(ValCheckInterval::Every(Limit::Fraction(1.0)))
    }
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            max_epochs: None,
            min_epochs: None,
            max_steps: -1,
            min_steps: None,
            max_time: None,
            limit_train_batches: Limit::Fraction(1.0),
            limit_val_batches: Limit::Fraction(1.0),
            limit_test_batches: Limit::Fraction(1.0),
            limit_predict_batches: Limit::Fraction(1.0),
            val_check_interval: None,
            check_val_every_n_epoch: EveryNEpochs::Epochs(1),
            num_sanity_val_steps: 2,
            fast_dev_run: FastDevRun::Flag(false),
            overfit_batches: Limit::Batches(0),
            accumulate_grad_batches: 1,
            gradient_clip_val: None,
            gradient_clip_algorithm: "norm".into(),
            precision: Default::default(),
            mixed_precision: None,
            strategy: "auto".into(),
            devices: Devices::Named("auto".into()),
            num_nodes: 1,
            ddp_timeout_s: 1800.0,
            process_group_backend: None,
            sync_batchnorm: false,
            deterministic: false,
            inference_mode: true,
            accelerator: "auto".into(),
            seed: None,
            threads: None,
            log_every_n_steps: 50,
            enable_progress_bar: true,
            enable_model_summary: true,
            default_root_dir: PathBuf::from("."),
            logger: true,
            loggers: vec!["csv".into()],
            enable_checkpointing: true,
            prefetch_batches: None,
            reload_dataloaders_every_n_epochs: 0,
            optimizer_override: None,
        }
    }
}

/// "DD:HH:MM:SS" → a duration.
pub fn parse_max_time(s: &str) -> Result<Duration> {
    let parts: Vec<&str> = s.split(':').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.trim().parse::<u64>().ok()).collect();
    match (parts.len(), nums) {
        (4, Some(n)) => {
            let secs = n[0]
                .checked_mul(24)
                .and_then(|h| h.checked_add(n[1]))
                .and_then(|h| h.checked_mul(60))
                .and_then(|m| m.checked_add(n[2]))
                .and_then(|m| m.checked_mul(60))
                .and_then(|s| s.checked_add(n[3]));
            secs.map(Duration::from_secs).ok_or_else(|| anyhow::anyhow!("trainer.max_time = {s:?} is too large"))
        }
        _ => bail!("trainer.max_time = {s:?}: expected \"DD:HH:MM:SS\""),
    }
}

impl TrainerConfig {
    /// `prefetch_batches`, or the machine's default.
    pub fn prefetch(&self) -> usize {
        self.prefetch_batches.unwrap_or_else(|| {
            if std::thread::available_parallelism().map_or(1, |n| n.get()) <= 2 {
                0
            } else {
                2
            }
        })
    }

    pub fn effective_max_epochs(&self) -> Option<u64> {
        if self.fast_dev_run.batches().is_some() {
            return Some(1);
        }
        match (self.max_epochs, self.max_steps, &self.max_time) {
            (Some(m), _, _) => u64::try_from(m).ok(),
            (None, -1, None) => Some(1000),
            _ => None,
        }
    }

    pub fn validate(&self) -> Result<Accelerator> {
        if let Some(m) = self.max_epochs.filter(|m| *m < -1) {
            bail!("`max_epochs` must be a non-negative integer or -1. You passed in {m}.");
        }
        if self.reload_dataloaders_every_n_epochs < 0 {
            bail!(
                "`reload_dataloaders_every_n_epochs` should be an int >= 0, got {}.",
                self.reload_dataloaders_every_n_epochs
            );
        }
        if self.max_steps < -1 {
            bail!("trainer.max_steps must be -1 (no limit) or a step count, got {}", self.max_steps);
        }
        if self.threads.is_some_and(|n| n == 0 || n > 1024) {
            bail!("trainer.threads must be between 1 and 1024");
        }
        if !(self.ddp_timeout_s.is_finite() && self.ddp_timeout_s > 0.0) {
            bail!("trainer.ddp_timeout_s must be a positive number of seconds");
        }
        if let Some(b) = self.process_group_backend.as_deref().filter(|b| !["nccl", "gloo"].contains(b)) {
            bail!("trainer.process_group_backend {b:?} is not available in lthost: \"nccl\" and \"gloo\" are");
        }
        self.devices.count()?;
        if self.accumulate_grad_batches == 0 {
            bail!("trainer.accumulate_grad_batches must be at least 1");
        }
        if !matches!(self.gradient_clip_algorithm.as_str(), "norm" | "value") {
            bail!(
                "trainer.gradient_clip_algorithm = {:?}: expected \"norm\" or \"value\"",
                self.gradient_clip_algorithm
            );
        }
        if self.gradient_clip_val.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            bail!("trainer.gradient_clip_val must be a non-negative number");
        }
        if self.num_sanity_val_steps < -1 {
            bail!("trainer.num_sanity_val_steps must be -1 (all), 0 or a count");
        }
        let vci = self.val_check_interval();
        if let Some(Limit::Fraction(f)) = vci.limit() {
            if !(f > 0.0 && f <= 1.0) {
                bail!("trainer.val_check_interval = {f}: a fraction must be in (0.0, 1.0]");
            }
        }
        if vci.limit() == Some(Limit::Batches(0)) {
            bail!("trainer.val_check_interval must be at least 1 batch");
        }
        vci.seconds()?;
        let every = self.check_val_every_n_epoch.epochs()?;
        // Lightning refuses a fraction given with check_val_every_n_epoch=None; left unset, the
        // interval is a whole epoch, counted across epochs.
        let given_fraction =
            matches!(self.val_check_interval.as_ref().and_then(|v| v.limit()), Some(Limit::Fraction(_)));
        if every.is_none() && given_fraction {
            bail!("trainer.check_val_every_n_epoch = \"none\" needs an integer val_check_interval (batches across epochs)");
        }
        if let Some(t) = &self.max_time {
            parse_max_time(t)?;
        }
        if let Some(bad) = self
            .loggers
            .iter()
            .find(|l| !matches!(l.as_str(), "csv" | "tensorboard" | "mlflow") && !l.ends_with(".wasm"))
        {
            bail!(
                "trainer.loggers: unknown logger {bad:?} (expected \"csv\", \"tensorboard\", \"mlflow\" or a logger plugin `.wasm`)"
            );
        }
        self.accelerator.parse()
    }
}

/// Applies one `--set a.b.c=value` to a TOML table.
fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let Some((key, value)) = set.split_once('=') else {
        bail!("--set {set:?}: expected table.key=value, e.g. --set trainer.max_epochs=3")
    };
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        bail!("--set {set:?}: the key `{key}` has an empty part");
    }
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut node = table;
    for (i, part) in path.iter().enumerate() {
        if i + 1 == path.len() {
            node.insert(part.to_string(), parsed);
            return Ok(());
        }
        let next = node.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match next {
            toml::Value::Table(t) => t,
            _ => bail!("--set {set:?}: `{}` is a value, not a table", path[..=i].join(".")),
        };
    }
    Ok(())
}

/// What a data directory from a run file would expose, if it is one no project should grant
/// by itself: `/`, a system directory, a home directory (or a directory above one), or a
/// home's key and credential stores.
fn sensitive_dir(d: &Path) -> Option<String> {
    let c = d.canonicalize().ok()?;
    if c == Path::new("/") {
        return Some("the whole filesystem".into());
    }
    for sys in ["/etc", "/root", "/home", "/usr", "/var", "/proc", "/sys", "/dev", "/boot"] {
        if c == Path::new(sys) || (c.starts_with(sys) && matches!(sys, "/etc" | "/proc" | "/sys" | "/dev" | "/boot")) {
            return Some(format!("the system directory {}", c.display()));
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).and_then(|h| h.canonicalize().ok())?;
    if home.starts_with(&c) {
        return Some("your home directory".into());
    }
    for secret in [".ssh", ".gnupg", ".aws", ".config", ".kube", ".docker", ".lthost"] {
        if c.starts_with(home.join(secret)) {
            return Some(format!("your {secret} directory"));
        }
    }
    None
}

/// Sandbox grants and limits for the plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// Directory the plugin may read (`/data` in the guest, and `tensor.load`).
    pub data_dir: Option<PathBuf>,
    pub memory_limit_mb: u64,
    pub hook_timeout_s: f64,
    /// Trusted public keys (`.pub` files or directories of them), beside
    /// `--trusted-keys` and `LTHOST_TRUSTED_KEYS`.
    pub trusted_keys: Vec<PathBuf>,
    /// Run unsigned or untrusted plugins (with a warning).
    pub allow_unsigned: bool,
    /// Host-side tensor memory a plugin may hold (MiB).
    pub tensor_memory_limit_mb: u64,
    /// Live handles (tensors, layers) a plugin may hold.
    pub max_live_handles: usize,
    /// Bytes a plugin may write into its writable grants (`/logs`, `/output`), in MiB.
    pub disk_quota_mb: u64,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            data_dir: None,
            memory_limit_mb: 2048,
            hook_timeout_s: 600.0,
            trusted_keys: Vec::new(),
            allow_unsigned: false,
            tensor_memory_limit_mb: 8192,
            max_live_handles: 100_000,
            disk_quota_mb: 1024,
        }
    }
}

impl PluginConfig {
    pub fn options(&self) -> Result<PluginOptions> {
        if !(self.hook_timeout_s.is_finite() && self.hook_timeout_s > 0.0 && self.hook_timeout_s <= 1e6) {
            bail!("plugin.hook_timeout_s must be a number of seconds in (0, 1e6]");
        }
        if self.memory_limit_mb == 0 || self.memory_limit_mb > 4096 {
            bail!("plugin.memory_limit_mb must be between 1 and 4096 (a wasm32 plugin addresses at most 4 GiB)");
        }
        if self.tensor_memory_limit_mb == 0 || self.max_live_handles == 0 {
            bail!("plugin.tensor_memory_limit_mb and plugin.max_live_handles must be positive");
        }
        if let Some(d) = &self.data_dir {
            if !d.is_dir() {
                bail!("plugin.data_dir `{}` is not a directory", d.display());
            }
        }
        let mut keys = self.trusted_keys.clone();
        keys.extend(crate::artifact::trust::TrustPolicy::env_paths());
        let trust = crate::artifact::trust::TrustPolicy::load(&keys, self.allow_unsigned)?;
        Ok(PluginOptions {
            data_dir: self.data_dir.clone(),
            memory_limit_bytes: (self.memory_limit_mb as usize).saturating_mul(1 << 20),
            hook_timeout: Duration::from_secs_f64(self.hook_timeout_s),
            trust: std::sync::Arc::new(trust),
            max_tensor_bytes: self.tensor_memory_limit_mb.saturating_mul(1 << 20),
            max_handles: self.max_live_handles,
            disk_quota_bytes: self.disk_quota_mb.saturating_mul(1 << 20),
            output_root: None,
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub trainer: TrainerConfig,
    pub plugin: PluginConfig,
    /// ModelCheckpoint's arguments.
    pub checkpoint: crate::callbacks::model_checkpoint::CheckpointConfig,
    /// EarlyStopping's arguments; absent: no early stopping.
    pub early_stopping: Option<crate::callbacks::early_stopping::EarlyStoppingConfig>,
    /// Built-in callbacks (`[callbacks.lr_monitor]`, ...) and callback plugins.
    pub callbacks: crate::callbacks::BuiltinCallbacks,
    pub progress_bar: crate::callbacks::progress_bar::ProgressBarConfig,
    /// `lthost lr-find`'s arguments.
    pub lr_find: crate::callbacks::lr_finder::LrFindConfig,
    /// `lthost fit --scale-batch-size`'s arguments (Lightning's `Tuner.scale_batch_size`).
    pub scale_batch_size: crate::callbacks::batch_size_finder::BatchSizeConfig,
    /// The built-in loggers' arguments (`[loggers.csv]`, `[loggers.tensorboard]`).
    pub loggers: crate::loggers::LoggersConfig,
    /// Passed to the plugin's `configure` as a JSON object.
    pub hparams: serde_json::Map<String, Value>,
    /// What a LightningCLI config (`--config x.yaml`) says beside the settings.
    #[serde(skip)]
    pub cli: crate::lightning_cli::CliExtras,
    /// The `[loggers.<kind>]` tables that came from a plugin's defaults alone.
    #[serde(skip)]
    pub default_loggers: Vec<String>,
}

impl RunConfig {
    /// Reads a TOML run file; relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::load(Some(path), &[])
    }

    /// The run file (if any) with `--set table.key=value` overrides applied (values are
    /// TOML: `3`, `0.5`, `true`, `"none"`, `[1, 2]`; anything else is a string). Unknown
    /// keys and ill-typed values are refused, naming the valid keys.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Self> {
        Self::load_over(None, path, sets)
    }

    /// As [`load`](Self::load), over `base` (a plugin's defaults as a run table,
    /// `main_block::run_table`): the run file's settings and `--set` go over it; a logger
    /// table it gives stays only while the run logs there.
    pub fn load_over(base: Option<toml::Table>, path: Option<&Path>, sets: &[String]) -> Result<Self> {
        let (text, shown) = match path {
            Some(p) => (
                std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?,
                format!("config {}", p.display()),
            ),
            None => (String::new(), "the run's settings".to_string()),
        };
        let mut cli = crate::lightning_cli::CliExtras::default();
        let mut table: toml::Table = match path {
            Some(p) if crate::lightning_cli::is_yaml(p) => {
                // The plugin's own seed is LightningCLI's `seed_everything_default` here.
                let seed = base
                    .as_ref()
                    .and_then(|b| b.get("trainer")?.get("seed")?.as_integer())
                    .map(|s| serde_json::json!(s));
                let (table, extras) = crate::lightning_cli::to_run_table_seeded(&text, &shown, seed)?;
                cli = extras;
                table
            }
            _ => toml::from_str(&text).map_err(|e| anyhow::anyhow!("{shown}: {}", e.to_string().trim()))?,
        };
        let mut default_loggers = Vec::new();
        if let Some(mut base) = base {
            if let Some(toml::Value::Table(l)) = base.get("loggers") {
                let given = table.get("loggers").and_then(toml::Value::as_table);
                default_loggers = l.keys().filter(|k| given.is_none_or(|g| !g.contains_key(*k))).cloned().collect();
            }
            crate::lightning_cli::merge(&mut base, table);
            table = base;
        }
        for set in sets {
            apply_set(&mut table, set)?;
        }
        let shown = if sets.is_empty() { shown } else { format!("{shown} with --set {}", sets.join(" --set ")) };
        let mut cfg: RunConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{shown}: {}", e.to_string().trim()))?;
        cfg.trainer.optimizer_override = cli.optimization.clone();
        cfg.cli = cli;
        cfg.default_loggers = default_loggers;
        let base = path.and_then(Path::parent).unwrap_or(Path::new("."));
        if let Some(d) = &cfg.plugin.data_dir {
            if d.is_relative() {
                cfg.plugin.data_dir = Some(base.join(d));
            }
        }
        for k in cfg.plugin.trusted_keys.iter_mut() {
            if k.is_relative() {
                *k = base.join(&*k);
            }
        }
        // A run file comes with a project someone else may have written: what it grants is
        // said, never taken silently.
        if !cfg.plugin.trusted_keys.is_empty() {
            let keys: Vec<String> = cfg.plugin.trusted_keys.iter().map(|k| k.display().to_string()).collect();
            eprintln!("note: {shown} makes these keys trusted: {}; plugins they signed will run", keys.join(", "));
        }
        if let Some(d) = &cfg.plugin.data_dir {
            if let Some(what) = sensitive_dir(d) {
                bail!("{shown}: plugin.data_dir = {:?} would let plugins read {what}; give plugins a data directory of their own (to grant it anyway, drop it from the run file and pass --data-dir)", d.display().to_string());
            }
        }
        for p in cfg.callbacks.plugins.iter_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for l in cfg.trainer.loggers.iter_mut() {
            if l.ends_with(".wasm") && Path::new(l.as_str()).is_relative() {
                *l = base.join(l.as_str()).to_string_lossy().into_owned();
            }
        }
        cfg.checkpoint.validate()?;
        cfg.callbacks.build()?;
        cfg.lr_find.validate()?;
        cfg.scale_batch_size.validate()?;
        cfg.loggers.validate()?;
        Ok(cfg)
    }

    /// A `[loggers.<kind>]` table is for a logger the run uses (checked once the command
    /// line has said which); one from a plugin's defaults is dropped when the run's config or
    /// flags chose other loggers.
    pub fn check_loggers(&mut self) -> Result<()> {
        for kind in std::mem::take(&mut self.default_loggers) {
            if !self.trainer.loggers.iter().any(|l| *l == kind) {
                match kind.as_str() {
                    "csv" => self.loggers.csv = None,
                    "tensorboard" => self.loggers.tensorboard = None,
                    "mlflow" => self.loggers.mlflow = None,
                    _ => {}
                }
            }
        }
        let given = [
            ("csv", self.loggers.csv.is_some()),
            ("tensorboard", self.loggers.tensorboard.is_some()),
            ("mlflow", self.loggers.mlflow.is_some()),
        ];
        for (kind, given) in given {
            if given && !self.trainer.loggers.iter().any(|l| l == kind) {
                bail!(
                    "[loggers.{kind}] is set but the run's loggers {:?} do not include it (add \"{kind}\" to \
                     trainer.loggers, or pass --logger {kind})",
                    self.trainer.loggers
                );
            }
        }
        Ok(())
    }

    /// Merges `--hparams` (a JSON object) over the file's `[hparams]`.
    pub fn merge_hparams_json(&mut self, text: &str) -> Result<()> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("hyper-parameters are not valid JSON: {e} (from --hparams {text:?})"))?;
        let Value::Object(map) = v else { bail!("hyper-parameters must be a JSON object, got {text:?}") };
        self.hparams.extend(map);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_file_cannot_grant_the_whole_filesystem() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("run.toml");
        std::fs::write(&f, "[plugin]\ndata_dir = \"/\"\n").unwrap();
        let err = RunConfig::load(Some(&f), &[]).err().unwrap().to_string();
        assert!(err.contains("the whole filesystem"), "{err}");
        std::fs::write(&f, "[plugin]\ndata_dir = \"/etc\"\n").unwrap();
        assert!(RunConfig::load(Some(&f), &[]).err().unwrap().to_string().contains("system directory"));
        std::fs::create_dir(d.path().join("data")).unwrap();
        std::fs::write(&f, "[plugin]\ndata_dir = \"data\"\n").unwrap();
        assert!(RunConfig::load(Some(&f), &[]).is_ok());
    }

    #[test]
    fn parses_a_run_file_and_refuses_unknown_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.toml");
        std::fs::write(&p, "[trainer]\nmax_epochs = 3\nseed = 7\n[hparams]\nlr = 0.1\n").unwrap();
        let c = RunConfig::from_file(&p).unwrap();
        assert_eq!(c.trainer.max_epochs, Some(3));
        assert_eq!(c.hparams["lr"], 0.1);
        std::fs::write(&p, "[trainer]\nmax_epoch = 3\n").unwrap();
        let e = RunConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("max_epoch"), "{e}");
    }

    #[test]
    fn set_overrides_the_file_and_names_valid_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.toml");
        std::fs::write(&p, "[trainer]\nmax_epochs = 3\n").unwrap();
        let sets = [
            "trainer.max_epochs=5".to_string(),
            "trainer.accelerator=cpu".into(),
            "hparams.lr=0.5".into(),
            "trainer.limit_val_batches=0.25".into(),
        ];
        let c = RunConfig::load(Some(&p), &sets).unwrap();
        assert_eq!(c.trainer.max_epochs, Some(5));
        assert_eq!(c.trainer.accelerator, "cpu");
        assert_eq!(c.hparams["lr"], 0.5);
        assert_eq!(c.trainer.limit_val_batches, Limit::Fraction(0.25));
        let e = RunConfig::load(None, &["trainer.max_epoch=1".to_string()]).unwrap_err().to_string();
        assert!(e.contains("max_epoch") && e.contains("max_epochs"), "the valid keys are listed: {e}");
        assert!(RunConfig::load(None, &["trainer.max_epochs=abc".to_string()]).is_err());
        assert!(RunConfig::load(None, &["trainer".to_string()]).is_err());
        assert!(RunConfig::load(None, &["trainer.max_epochs.x=1".to_string()]).is_err());
    }

    #[test]
    fn hparams_must_be_a_json_object() {
        let mut c = RunConfig::default();
        assert!(c.merge_hparams_json("{\"a\": 1}").is_ok());
        assert!(c.merge_hparams_json("{a: 1}").unwrap_err().to_string().contains("not valid JSON"));
        assert!(c.merge_hparams_json("[1]").is_err());
    }

    #[test]
    fn a_time_based_val_check_interval_parses_as_lightning() {
        let t = |v: ValCheckInterval| v.seconds().map_err(|e| e.to_string());
        assert_eq!(t(ValCheckInterval::Time("01:02:03:04".into())), Ok(Some(93_784.0)));
        let parts = BTreeMap::from([("hours".to_string(), 2.0), ("minutes".to_string(), 30.0)]);
        assert_eq!(t(ValCheckInterval::TimeParts(parts)), Ok(Some(9_000.0)));
        assert_eq!(t(ValCheckInterval::Every(Limit::Batches(3))), Ok(None));
        assert!(t(ValCheckInterval::Time("1:2".into())).is_err());
        assert!(t(ValCheckInterval::TimeParts(BTreeMap::from([("fortnights".to_string(), 1.0)]))).is_err());
        let c: RunConfig = toml::from_str("[trainer]\nval_check_interval = \"00:00:10:00\"\n").unwrap();
        assert_eq!(c.trainer.val_check_interval().seconds().unwrap(), Some(600.0));
        let c: RunConfig = toml::from_str("[trainer]\nval_check_interval = { minutes = 1.5 }\n").unwrap();
        assert_eq!(c.trainer.val_check_interval().seconds().unwrap(), Some(90.0));
        // check_val_every_n_epoch = "none": with the interval unset (a whole epoch, counted
        // across epochs) accepted, with a fraction given refused (Lightning's data connector).
        let c: RunConfig = toml::from_str("[trainer]\ncheck_val_every_n_epoch = \"none\"\n").unwrap();
        assert!(c.trainer.validate().is_ok());
        let c: RunConfig =
            toml::from_str("[trainer]\ncheck_val_every_n_epoch = \"none\"\nval_check_interval = 0.5\n").unwrap();
        assert!(c.trainer.validate().is_err());
        let c: RunConfig = toml::from_str("[trainer]\nval_check_interval = 0.25\n").unwrap();
        assert_eq!(c.trainer.val_check_interval().limit(), Some(Limit::Fraction(0.25)));
    }

    #[test]
    fn max_epochs_defaults_like_lightning() {
        let mut t = TrainerConfig::default();
        assert_eq!(t.effective_max_epochs(), Some(1000));
        t.max_steps = 10;
        assert_eq!(t.effective_max_epochs(), None);
        t.max_steps = -1;
        t.max_time = Some("00:00:01:00".into());
        assert_eq!(t.effective_max_epochs(), None);
        t.fast_dev_run = FastDevRun::Flag(true);
        assert_eq!(t.effective_max_epochs(), Some(1));
        let t = TrainerConfig { max_epochs: Some(-1), max_steps: 7, ..Default::default() };
        assert_eq!(t.effective_max_epochs(), None, "-1: no epoch limit");
        let bad = TrainerConfig { max_epochs: Some(-2), ..Default::default() };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "`max_epochs` must be a non-negative integer or -1. You passed in -2."
        );
    }

    #[test]
    fn a_negative_reload_interval_is_refused_with_lightnings_message() {
        let bad = TrainerConfig { reload_dataloaders_every_n_epochs: -1, ..Default::default() };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "`reload_dataloaders_every_n_epochs` should be an int >= 0, got -1."
        );
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let t = TrainerConfig { threads: Some(1 << 31), ..TrainerConfig::default() };
        assert!(t.validate().is_err());
        assert!(parse_max_time("999999999999999:00:00:00").is_err());
        let p = PluginConfig { hook_timeout_s: 1e20, ..PluginConfig::default() };
        assert!(p.options().is_err());
    }

    #[test]
    fn limits_follow_lightning() {
        assert_eq!(Limit::Batches(3).apply(10, "x").unwrap(), 3);
        assert_eq!(Limit::Batches(30).apply(10, "x").unwrap(), 10);
        assert_eq!(Limit::Fraction(0.25).apply(10, "x").unwrap(), 2);
        assert!(Limit::Fraction(0.01).apply(10, "x").is_err());
        assert_eq!(Limit::Fraction(0.0).apply(10, "x").unwrap(), 0);
        assert_eq!(parse_max_time("00:01:02:03").unwrap(), Duration::from_secs(3723));
        assert!(parse_max_time("1:2").is_err());
    }

    #[test]
    fn toml_takes_ints_floats_and_none() {
        let c: RunConfig = toml::from_str("[trainer]\nlimit_train_batches = 3\nlimit_val_batches = 0.5\ncheck_val_every_n_epoch = \"none\"\nval_check_interval = 4\nfast_dev_run = true\n").unwrap();
        assert_eq!(c.trainer.limit_train_batches, Limit::Batches(3));
        assert_eq!(c.trainer.limit_val_batches, Limit::Fraction(0.5));
        assert_eq!(c.trainer.check_val_every_n_epoch.epochs().unwrap(), None);
        assert_eq!(c.trainer.fast_dev_run.batches(), Some(1));
        assert!(c.trainer.validate().is_ok());
    }
}
