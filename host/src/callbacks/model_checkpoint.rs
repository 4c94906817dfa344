//! Lightning's ModelCheckpoint: when to save (every n train steps, every n epochs, at the
//! end of training epochs or of validation), what to keep (top-k by a monitored metric,
//! `last.ckpt`), and how files are named (`{epoch}-{step}-{val_loss:.2f}` templates,
//! `-v1` suffixes on clashes). Its state (best/kth/last paths) goes into checkpoints.
//!
//! It removes only files it may: ones it wrote in this run, or ones a resumed checkpoint
//! lists that lie directly in its directory and are checkpoints of the same plugin. Every
//! other path a checkpoint names is dropped with a warning, and removals go through the
//! directory's handle ([`RunDir`]), never through a path.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::callbacks::py_format::{self, Number};
use crate::config::Limit;
use crate::run_dir::RunDir;

/// `[checkpoint]` in the run file: ModelCheckpoint's arguments, with Lightning's names and
/// meanings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Unset: `<log dir>/checkpoints`.
    pub dirpath: Option<PathBuf>,
    /// Template with Python format specs, e.g. "{epoch:03d}-{val_loss:.2f}"; unset:
    /// "{epoch}-{step}".
    pub filename: Option<String>,
    pub monitor: Option<String>,
    /// "min" or "max".
    pub mode: String,
    /// -1: keep all; 0: none (only `last`, if save_last).
    pub save_top_k: i64,
    /// `true`: `last.ckpt` is saved whenever a checkpoint is; `"link"`: it is a relative
    /// symlink to the newest checkpoint saved (a full save only before any other was).
    pub save_last: SaveLast,
    /// The triggers, mutually exclusive as in Lightning. None of the three set: every epoch;
    /// any one set: the others off (`every_n_train_steps` alone saves no epoch ends), and 0
    /// means never.
    pub every_n_train_steps: Option<i64>,
    pub every_n_epochs: Option<i64>,
    /// Lightning's `train_time_interval`: save at most once per this many seconds of
    /// training (checked after each batch).
    pub train_time_interval_s: Option<f64>,
    pub save_weights_only: bool,
    /// Save at the end of the training epoch (true) or of validation (false). Unset: at
    /// the training epoch's end unless the epoch validates, as Lightning decides.
    pub save_on_train_epoch_end: Option<bool>,
    /// `{epoch}` writes `epoch=3` (true) or `3`.
    pub auto_insert_metric_name: bool,
    /// A name that exists gets `-v1`, `-v2`, ... instead of replacing the file.
    pub enable_version_counter: bool,
    /// Lightning's OnExceptionCheckpoint: when the run fails, save `on_exception.ckpt`.
    pub on_exception: bool,
    /// When the run fails, save a checkpoint named by `filename` (and `last`), unless this
    /// step is saved already (Lightning's `save_on_exception`).
    pub save_on_exception: bool,
    /// Lightning's `verbose`: each top-k decision is said (on stderr, in Lightning's words).
    pub verbose: bool,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            dirpath: None,
            filename: None,
            monitor: None,
            mode: "min".into(),
            save_top_k: 1,
            save_last: SaveLast::No,
            every_n_train_steps: None,
            every_n_epochs: None,
            train_time_interval_s: None,
            save_weights_only: false,
            save_on_train_epoch_end: None,
            auto_insert_metric_name: true,
            enable_version_counter: true,
            on_exception: false,
            save_on_exception: false,
            verbose: false,
        }
    }
}

/// Lightning's `save_last`: `false`, `true` or `"link"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveLast {
    #[default]
    No,
    Yes,
    Link,
}

impl Serialize for SaveLast {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            SaveLast::No => s.serialize_bool(false),
            SaveLast::Yes => s.serialize_bool(true),
            SaveLast::Link => s.serialize_str("link"),
        }
    }
}

impl<'de> Deserialize<'de> for SaveLast {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(b) => Ok(if b { SaveLast::Yes } else { SaveLast::No }),
            Raw::Word(w) if w == "link" => Ok(SaveLast::Link),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("save_last is true, false or \"link\", not {w:?}"))),
        }
    }
}

/// Python's `str(timedelta(seconds=s))`, for Lightning's messages.
fn timedelta(s: f64) -> String {
    let whole = s.trunc() as u64;
    let micros = ((s - s.trunc()) * 1e6).round() as u64;
    let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60);
    let days = if h >= 24 { format!("{} day{}, ", h / 24, if h / 24 == 1 { "" } else { "s" }) } else { String::new() };
    let frac = if micros > 0 { format!(".{micros:06}") } else { String::new() };
    format!("{days}{}:{m:02}:{sec:02}{frac}", h % 24)
}

impl CheckpointConfig {
    /// (every_n_epochs, every_n_train_steps) in effect: Lightning's `__init_triggers`.
    pub fn triggers(&self) -> (u64, u64) {
        if self.every_n_train_steps.is_none() && self.every_n_epochs.is_none() && self.train_time_interval_s.is_none() {
            return (1, 0);
        }
        (self.every_n_epochs.unwrap_or(0).max(0) as u64, self.every_n_train_steps.unwrap_or(0).max(0) as u64)
    }

    /// `dirpath` with a leading `~` expanded to the user's home directory (Lightning's
    /// `os.path.expanduser`); unset: None.
    pub fn resolved_dirpath(&self) -> Option<PathBuf> {
        self.dirpath.as_deref().map(crate::run_dir::expand_home)
    }

    /// Refuses what Lightning's ModelCheckpoint refuses, with its messages.
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.mode.as_str(), "min" | "max") {
            bail!("`mode` can be min, max but got {}", self.mode);
        }
        if self.save_top_k < -1 {
            bail!("Invalid value for save_top_k={}. Must be >= -1", self.save_top_k);
        }
        if let Some(n) = self.every_n_train_steps.filter(|n| *n < 0) {
            bail!("Invalid value for every_n_train_steps={n}. Must be >= 0");
        }
        if let Some(n) = self.every_n_epochs.filter(|n| *n < 0) {
            bail!("Invalid value for every_n_epochs={n}. Must be >= 0");
        }
        // At most Python's `timedelta.max` (999999999 days), which Lightning's interval is.
        if self.train_time_interval_s.is_some_and(|t| !(t.is_finite() && (0.0..8.64e13).contains(&t))) {
            bail!("checkpoint.train_time_interval_s must be a number of seconds >= 0 and below 999999999 days");
        }
        let (epochs, steps) = self.triggers();
        if u8::from(steps >= 1) + u8::from(epochs >= 1) + u8::from(self.train_time_interval_s.is_some()) > 1 {
            let t = self.train_time_interval_s.map(timedelta).unwrap_or_else(|| "None".into());
            bail!("Combination of parameters every_n_train_steps={steps}, every_n_epochs={epochs} and train_time_interval={t} should be mutually exclusive.");
        }
        if self.monitor.is_none() && !matches!(self.save_top_k, -1..=1) {
            bail!(
                "ModelCheckpoint(save_top_k={}, monitor=None) is not a valid configuration. No quantity for top_k to track.",
                self.save_top_k
            );
        }
        Ok(())
    }
}

/// The numbers a template may name: `epoch` and `step` (and a missing key, as 0) are ints,
/// metrics floats.
fn template_value(name: &str, metrics: &BTreeMap<String, f64>) -> Number {
    match metrics.get(name) {
        Some(v) if name == "epoch" || name == "step" => Number::Int(*v as i64),
        Some(v) => Number::Float(*v),
        None => Number::Int(0),
    }
}

/// Fills a filename template as Lightning's `_format_checkpoint_name`: `{epoch}` → `epoch=3`
/// (or `3` without `auto_insert`), `{val_loss:.2f}` → `val_loss=0.12` (Python format specs),
/// a key not in `metrics` → 0.
pub fn format_name(template: &str, metrics: &BTreeMap<String, f64>, auto_insert: bool) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open].replace("}}", "}"));
        if rest[open..].starts_with("{{") {
            out.push('{');
            rest = &rest[open + 2..];
            continue;
        }
        let Some(close) = rest[open..].find('}') else {
            bail!("checkpoint filename template {template:?}: a `{{` is not closed");
        };
        let inner = &rest[open + 1..open + close];
        let (name, spec) = inner.split_once(':').unwrap_or((inner, ""));
        let text = py_format::format(template_value(name, metrics), spec)
            .map_err(|e| anyhow::anyhow!("checkpoint filename template {template:?}, `{{{inner}}}`: {e}"))?;
        if auto_insert {
            out.push_str(name);
            out.push('=');
        }
        out.push_str(&text);
        rest = &rest[open + close + 1..];
    }
    out.push_str(&rest.replace("}}", "}"));
    Ok(out)
}

/// A score from a checkpoint's state: a number, or "inf" / "-inf".
fn score(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str()?.parse().ok())
}

/// ModelCheckpoint's state key starts so (Lightning's `ModelCheckpoint{'monitor': …}`).
pub const STATE_KEY_PREFIX: &str = "ModelCheckpoint";

pub struct ModelCheckpoint {
    pub cfg: CheckpointConfig,
    pub dirpath: PathBuf,
    every_n_epochs: u64,
    every_n_train_steps: u64,
    /// Lightning's `best_k_models`, in insertion order: kept checkpoints and their scores
    /// (a NaN score is kept as the worst possible).
    pub best_k: Vec<(PathBuf, f64)>,
    kth_best_model_path: Option<PathBuf>,
    kth_value: f64,
    pub best_model_path: Option<PathBuf>,
    pub best_model_score: Option<f64>,
    current_score: Option<f64>,
    pub last_model_path: Option<PathBuf>,
    /// The global step of the last save (0 before any: nothing is saved before a step).
    last_global_step_saved: u64,
    last_checkpoint_saved: Option<PathBuf>,
    /// When train_time_interval was last checked (set when training starts).
    last_time_checked: Option<std::time::Instant>,
    /// A step- or time-triggered save waits for a validation run to produce the monitor.
    defer_save_until_validation: bool,
    warned_missing_monitor: bool,
    /// What `verbose` said, in order.
    pub said: Vec<String>,
    /// The checkpoint this run resumed from: never removed.
    pub resumed_from: Option<PathBuf>,
    /// The checkpoint directory, opened on first use.
    dir: Option<RunDir>,
    /// File names it may remove: those this run wrote in the directory and those a resumed
    /// checkpoint listed that [`ModelCheckpoint::load_state`] accepted.
    owned: HashSet<String>,
}

/// What a trigger decided: write the checkpoint to these paths (a top-k file and/or
/// `last`), then remove these.
#[derive(Debug, Default)]
pub struct SavePlan {
    pub paths: Vec<PathBuf>,
    /// `save_last="link"`: (the link, the checkpoint it names), made after the saves.
    pub links: Vec<(PathBuf, PathBuf)>,
    pub remove: Vec<PathBuf>,
}

/// When validation runs in this fit (what decides where ModelCheckpoint's epoch saves go).
#[derive(Debug, Clone, Copy)]
pub struct ValidationSchedule {
    pub val_batches: usize,
    pub check_val_every_n_epoch: Option<u64>,
    /// A time-based val_check_interval.
    pub by_time: bool,
    /// The batch-based val_check_interval, as configured.
    pub val_check_interval: Option<Limit>,
}

/// Where a trigger fires: Lightning's `_monitor_candidates` (callback metrics with `epoch`
/// and `step`), the global step, and whether a validation run has produced metrics in this
/// fit (`val_loop._has_run`).
pub struct Moment<'a> {
    pub metrics: &'a BTreeMap<String, f64>,
    pub global_step: u64,
    pub val_has_run: bool,
}

impl ModelCheckpoint {
    pub fn new(cfg: CheckpointConfig, default_dir: &Path) -> Result<Self> {
        cfg.validate()?;
        let dirpath = cfg.resolved_dirpath().unwrap_or_else(|| default_dir.join("checkpoints"));
        let dir = RunDir::open_existing(&dirpath);
        // A process killed mid-write leaves its temp file (lthost's own prefix, with its pid);
        // the finished files are whole. Only those of processes that are gone are removed.
        if let Some(d) = &dir {
            for (name, link) in d.entries() {
                if crate::fs::is_stale_temp(&name) {
                    let _ = if link { d.remove_link(&name) } else { d.remove(&name) };
                }
            }
        }
        let (every_n_epochs, every_n_train_steps) = cfg.triggers();
        let kth_value = if cfg.mode == "max" { f64::NEG_INFINITY } else { f64::INFINITY };
        Ok(ModelCheckpoint {
            cfg,
            dirpath,
            every_n_epochs,
            every_n_train_steps,
            best_k: Vec::new(),
            kth_best_model_path: None,
            kth_value,
            best_model_path: None,
            best_model_score: None,
            current_score: None,
            last_model_path: None,
            last_global_step_saved: 0,
            last_checkpoint_saved: None,
            last_time_checked: None,
            defer_save_until_validation: false,
            warned_missing_monitor: false,
            said: Vec::new(),
            resumed_from: None,
            dir,
            owned: HashSet::new(),
        })
    }

    /// The checkpoint directory's handle (created on first use).
    pub fn run_dir(&mut self) -> Result<&RunDir> {
        if self.dir.is_none() {
            self.dir = Some(RunDir::open(&self.dirpath)?);
        }
        self.dir.as_ref().ok_or_else(|| anyhow::anyhow!("internal: no checkpoint directory"))
    }

    /// Records that this run wrote `path` (a file of the directory).
    pub fn wrote(&mut self, path: &Path) {
        if let Some(name) = self.dir.as_ref().and_then(|d| d.name_of(path)) {
            self.owned.insert(name);
        }
    }

    /// Makes `link` (`last.ckpt`) a relative symlink to `target`, both in the checkpoint
    /// directory: it replaces only what this run wrote or accepted from the checkpoint it
    /// resumed ([`Self::versioned`] picked the name), never another file.
    pub fn link(&mut self, link: &Path, target: &Path) -> Result<()> {
        self.run_dir()?;
        let Some(dir) = self.dir.as_ref() else { bail!("internal: no checkpoint directory") };
        let (Some(name), Some(to)) = (dir.name_of(link), dir.name_of(target)) else {
            bail!(
                "ModelCheckpoint: {} and {} are not both in {}",
                link.display(),
                target.display(),
                self.dirpath.display()
            );
        };
        if link.symlink_metadata().is_ok() && !self.owned.contains(&name) {
            bail!("ModelCheckpoint(save_last=\"link\") would replace {}, which this run did not write; lthost never replaces such a file", link.display());
        }
        dir.link(&name, &to).with_context(|| format!("ModelCheckpoint could not link {} to {to}", link.display()))?;
        self.owned.insert(name);
        Ok(())
    }

    /// Removes a checkpoint that fell out of the top k: only a regular file directly in the
    /// directory that this run wrote or a resumed checkpoint listed (and [`load_state`]
    /// checked). Anything else is left alone with a warning.
    pub fn remove(&mut self, path: &Path) {
        if self.run_dir().is_err() {
            return;
        }
        let Some(dir) = self.dir.as_ref() else { return };
        match dir.name_of(path) {
            Some(name) if self.owned.contains(&name) => {
                let removed = if dir.is_link(&name) { dir.remove_link(&name) } else { dir.remove(&name) };
                if let Err(e) = removed {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        eprintln!("warning: ModelCheckpoint did not remove {}: {e}", path.display());
                    }
                }
                self.owned.remove(&name);
            }
            Some(_) => eprintln!("warning: ModelCheckpoint did not remove {}: this run neither wrote it nor accepted it from the checkpoint it resumed", path.display()),
            None => eprintln!("warning: ModelCheckpoint did not remove {}: it is not in the checkpoint directory {}", path.display(), self.dirpath.display()),
        }
    }

    /// Lightning's `ModelCheckpoint.state_key`: the monitor, mode and triggers in effect.
    pub fn state_key(&self) -> String {
        use crate::callbacks::state_key::{state_key, PyValue};
        let monitor = self.cfg.monitor.clone().map_or(PyValue::None, PyValue::Str);
        let time = self.cfg.train_time_interval_s.map_or(PyValue::None, PyValue::Timedelta);
        state_key(
            STATE_KEY_PREFIX,
            &[
                ("monitor", monitor),
                ("mode", PyValue::Str(self.cfg.mode.clone())),
                ("every_n_train_steps", PyValue::Int(self.every_n_train_steps as i64)),
                ("every_n_epochs", PyValue::Int(self.every_n_epochs as i64)),
                ("train_time_interval", time),
            ],
        )
    }

    /// The key older lthost checkpoints kept this state under (Rust's `Debug` forms, no
    /// triggers), read when a checkpoint has none under [`Self::state_key`].
    pub fn legacy_state_key(&self) -> String {
        format!("{STATE_KEY_PREFIX}{{'monitor': {:?}, 'mode': {:?}}}", self.cfg.monitor, self.cfg.mode)
    }

    /// Puts back the kept files from a checkpoint's state. `plugin_sha256`: the running
    /// plugin's; a listed file is kept only if it lies directly in this run's checkpoint
    /// directory and is a checkpoint of that plugin (else it is dropped, with a warning, and
    /// never removed later).
    pub fn load_state(&mut self, s: &Value, plugin_sha256: &str) {
        let dir = RunDir::open_existing(&self.dirpath);
        let accept = |v: &Value| -> Option<PathBuf> {
            let p = PathBuf::from(v.as_str()?);
            // A `save_last="link"` link is taken for the checkpoint it names beside it.
            let ok = dir.as_ref().and_then(|d| Some((d, d.name_of(&p)?))).is_some_and(|(d, name)| {
                let file = d.link_target(&name).unwrap_or(name);
                crate::checkpoint::read_meta(d, &file).is_ok_and(|m| m.plugin_sha256 == plugin_sha256)
            });
            if !ok {
                eprintln!("warning: the checkpoint's ModelCheckpoint state names {}, which is not a checkpoint of this plugin in {}; it is ignored", p.display(), self.dirpath.display());
            }
            ok.then_some(p)
        };
        let accepted = |p: &Option<PathBuf>, owned: &mut HashSet<String>| {
            if let Some(name) = p.as_ref().and_then(|p| dir.as_ref()?.name_of(p)) {
                owned.insert(name);
            }
        };
        self.best_model_path = s.get("best_model_path").and_then(accept);
        self.best_model_score = self.best_model_path.as_ref().and(score(&s["best_model_score"]));
        self.last_model_path = s.get("last_model_path").filter(|v| !v.is_null()).and_then(accept);
        if let Some(m) = s["best_k_models"].as_object() {
            self.best_k = m.iter().filter_map(|(p, v)| Some((accept(&Value::String(p.clone()))?, score(v)?))).collect();
        }
        self.kth_best_model_path =
            s["kth_best_model_path"].as_str().map(PathBuf::from).filter(|p| self.score_of(p).is_some());
        if let Some(v) = self.kth_best_model_path.as_ref().and_then(|p| self.score_of(p)) {
            self.kth_value = v;
        }
        self.current_score = score(&s["current_score"]);
        for p in self
            .best_k
            .iter()
            .map(|(p, _)| Some(p.clone()))
            .chain([self.best_model_path.clone(), self.last_model_path.clone()])
        {
            accepted(&p, &mut self.owned);
        }
    }

    /// What the loggers' `after_save_checkpoint` is told once `saved` is written. `last`: the
    /// last-model path then (Lightning writes a top-k file before it moves `last_model_path`
    /// to the `last.ckpt` written after it).
    pub fn saved_state(&self, saved: &Path, last: Option<&Path>) -> crate::loggers::CheckpointSaved {
        let name = |p: Option<&Path>| {
            p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        };
        crate::loggers::CheckpointSaved {
            saved: name(Some(saved)),
            dir: self.dirpath.clone(),
            current_score: self.current_score,
            settings: json!({
                "monitor": self.cfg.monitor,
                "mode": self.cfg.mode,
                "save_last": self.cfg.save_last,
                "save_top_k": self.cfg.save_top_k,
                "save_weights_only": self.cfg.save_weights_only,
                "_every_n_train_steps": self.cfg.every_n_train_steps.unwrap_or(0),
            }),
            monitor: self.cfg.monitor.clone(),
            save_top_k: self.cfg.save_top_k,
            best_model_path: name(self.best_model_path.as_deref()),
            best_model_score: self.best_model_score,
            last_model_path: name(last),
            best_k_models: self.best_k.iter().map(|(p, s)| (name(Some(p)), *s)).collect(),
        }
    }

    pub fn state(&self) -> Value {
        // Scores may be ±inf (a NaN is kept as the worst): written as strings JSON can hold.
        let num = |v: f64| if v.is_finite() { json!(v) } else { json!(v.to_string()) };
        let best_k: serde_json::Map<String, Value> =
            self.best_k.iter().map(|(p, s)| (p.display().to_string(), num(*s))).collect();
        json!({
            "monitor": self.cfg.monitor,
            "dirpath": self.dirpath,
            "best_model_path": self.best_model_path,
            "best_model_score": self.best_model_score.map(num),
            "current_score": self.current_score.map(num),
            "last_model_path": self.last_model_path,
            "best_k_models": best_k,
            "kth_best_model_path": self.kth_best_model_path,
            "kth_value": num(self.kth_value),
        })
    }

    fn better(&self, a: f64, b: f64) -> bool {
        if self.cfg.mode == "max" {
            a > b
        } else {
            a < b
        }
    }

    /// Whether the epoch triggers fire at the training epoch's end (else at validation's
    /// end), Lightning's `_should_save_on_train_epoch_end`: as set explicitly; else not when
    /// validation goes by time or runs every n > 1 epochs (or by batch count across epochs);
    /// else when `val_check_interval` is 1 (one validation per epoch). One difference, a
    /// Lightning pain point: without any validation batches lthost saves at the epoch's end
    /// whatever `check_val_every_n_epoch` says (Lightning would wait for a validation that
    /// never comes, and never save).
    pub fn saves_on_train_epoch_end(&self, when: ValidationSchedule) -> bool {
        if let Some(b) = self.cfg.save_on_train_epoch_end {
            return b;
        }
        if when.val_batches == 0 {
            return true;
        }
        if when.by_time {
            return false;
        }
        if when.check_val_every_n_epoch != Some(1) {
            return false;
        }
        matches!(when.val_check_interval, Some(Limit::Fraction(f)) if f == 1.0)
            || when.val_check_interval == Some(Limit::Batches(1))
    }

    /// Lightning's `_should_skip_saving_checkpoint` within fit: this step is saved already
    /// (or no step was taken).
    fn skips(&self, global_step: u64) -> bool {
        self.last_global_step_saved == global_step
    }

    pub fn on_train_start(&mut self) {
        self.last_time_checked = Some(std::time::Instant::now());
    }

    /// Whether the step or time trigger fires at this batch (before anything else is
    /// looked at: most batches save nothing).
    pub fn batch_trigger_fires(&self, global_step: u64, automatic: bool) -> bool {
        let steps = self.every_n_train_steps >= 1 && global_step % self.every_n_train_steps == 0;
        let time = automatic
            && self
                .cfg
                .train_time_interval_s
                .is_some_and(|t| self.last_time_checked.is_some_and(|c| c.elapsed().as_secs_f64() >= t));
        steps || time
    }

    /// After every training batch: the step and time triggers. A monitor that does not
    /// exist yet (or, when `val_follows`, would be stale) defers the save to the end of the
    /// validation run that produces it.
    pub fn on_train_batch_end(
        &mut self,
        at: &Moment<'_>,
        automatic: bool,
        save_on_train_epoch_end: bool,
        val_follows: bool,
    ) -> Result<SavePlan> {
        let mut plan = SavePlan::default();
        let skip_batch = self.every_n_train_steps < 1 || at.global_step % self.every_n_train_steps != 0;
        let monitor_missing = self.cfg.monitor.as_ref().is_some_and(|m| !at.metrics.contains_key(m));
        if !automatic {
            if skip_batch || self.skips(at.global_step) {
                return Ok(plan);
            }
            if monitor_missing {
                self.defer_save_until_validation = true;
                return Ok(plan);
            }
            self.save_topk(&mut plan, at)?;
            self.save_last(&mut plan, at)?;
            self.last_time_checked = Some(std::time::Instant::now());
            return Ok(plan);
        }
        let now = std::time::Instant::now();
        let skip_time = match self.cfg.train_time_interval_s {
            Some(t) => self.last_time_checked.is_none_or(|c| now.duration_since(c).as_secs_f64() < t),
            None => true,
        };
        if skip_batch && skip_time {
            return Ok(plan);
        }
        if !skip_time {
            self.last_time_checked = Some(now);
        }
        if monitor_missing || (self.cfg.monitor.is_some() && !save_on_train_epoch_end && val_follows) {
            self.defer_save_until_validation = true;
            return Ok(plan);
        }
        if self.skips(at.global_step) {
            return Ok(plan);
        }
        self.save_topk(&mut plan, at)?;
        self.save_last(&mut plan, at)?;
        Ok(plan)
    }

    /// At the training epoch's end (when the epoch triggers fire there): top-k every
    /// `every_n_epochs` epochs, `last` when this step was saved.
    pub fn on_train_epoch_end(
        &mut self,
        at: &Moment<'_>,
        epoch: u64,
        save_on_train_epoch_end: bool,
    ) -> Result<SavePlan> {
        let mut plan = SavePlan::default();
        if self.skips(at.global_step) || !save_on_train_epoch_end {
            return Ok(plan);
        }
        self.epoch_saves(&mut plan, at, epoch)?;
        Ok(plan)
    }

    /// At the end of a validation run inside fit (when the epoch triggers fire there, or a
    /// deferred step save waits for it).
    pub fn on_validation_end(
        &mut self,
        at: &Moment<'_>,
        epoch: u64,
        save_on_train_epoch_end: bool,
    ) -> Result<SavePlan> {
        let mut plan = SavePlan::default();
        if self.skips(at.global_step) || save_on_train_epoch_end {
            return Ok(plan);
        }
        if self.defer_save_until_validation {
            self.save_topk(&mut plan, at)?;
            self.save_last(&mut plan, at)?;
            self.defer_save_until_validation = false;
            return Ok(plan);
        }
        self.epoch_saves(&mut plan, at, epoch)?;
        Ok(plan)
    }

    /// When training ends: `last` is written if `save_last` is set and nothing was saved.
    pub fn on_train_end(&mut self, at: &Moment<'_>) -> Result<SavePlan> {
        let mut plan = SavePlan::default();
        if self.cfg.save_last != SaveLast::No && self.last_checkpoint_saved.is_none() {
            self.save_last(&mut plan, at)?;
        }
        Ok(plan)
    }

    /// When the run fails (`save_on_exception`): a checkpoint named by the template, outside
    /// the top k, and `last`; nothing during the sanity check or when this step is saved.
    pub fn on_exception(&mut self, at: &Moment<'_>, sanity_checking: bool) -> Result<SavePlan> {
        let mut plan = SavePlan::default();
        if !self.cfg.save_on_exception || sanity_checking || self.skips(at.global_step) {
            return Ok(plan);
        }
        let name = self.file_name(at.metrics)?;
        let path = self.versioned(&name, None)?;
        self.save(&mut plan, path, at.global_step);
        self.save_last(&mut plan, at)?;
        Ok(plan)
    }

    fn epoch_saves(&mut self, plan: &mut SavePlan, at: &Moment<'_>, epoch: u64) -> Result<()> {
        if self.every_n_epochs >= 1 && (epoch + 1) % self.every_n_epochs == 0 {
            self.save_topk(plan, at)?;
        }
        // `last` follows a save made now; a link is refreshed at every epoch save point once
        // any checkpoint exists (Lightning).
        let linking = self.cfg.save_last == SaveLast::Link && self.last_checkpoint_saved.is_some();
        if self.last_global_step_saved == at.global_step || linking {
            self.save_last(plan, at)?;
        }
        Ok(())
    }

    fn save(&mut self, plan: &mut SavePlan, path: PathBuf, global_step: u64) {
        self.last_global_step_saved = global_step;
        self.last_checkpoint_saved = Some(path.clone());
        plan.paths.push(path);
    }

    /// Lightning's `_should_remove_checkpoint`: not the file just written, not the one the
    /// run resumed from, and inside the checkpoint directory (`remove` checks ownership).
    fn drop_later(&self, plan: &mut SavePlan, previous: &Path, current: &Path) {
        let same =
            |a: &Path, b: &Path| a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
        if same(previous, current) || self.resumed_from.as_deref().is_some_and(|r| same(r, previous)) {
            return;
        }
        if previous.parent().is_some_and(|p| same(p, &self.dirpath)) {
            plan.remove.push(previous.to_path_buf());
        }
    }

    /// `<dirpath>/<name>.ckpt`, versioned `-v1`, `-v2`, ... while a file of that name exists
    /// (other than `replacing`, which this save supersedes). Without the version counter a
    /// name is reused only for a file this run wrote (or accepted from the checkpoint it
    /// resumed): any other file is never overwritten. A name is a file in the directory: a
    /// template that makes a path (`{val/loss}`) is refused.
    fn versioned(&self, name: &str, replacing: Option<&Path>) -> Result<PathBuf> {
        if name.contains(['/', '\\']) || name.starts_with('.') || name.is_empty() {
            bail!("ModelCheckpoint: the checkpoint name {name:?} is not a plain file name (lthost writes checkpoints directly into {}; a metric named with `/` cannot be in the filename template)", self.dirpath.display());
        }
        let mut path = self.dirpath.join(format!("{name}.ckpt"));
        if !self.cfg.enable_version_counter {
            let ours = self.dir.as_ref().and_then(|d| d.name_of(&path)).is_some_and(|n| self.owned.contains(&n));
            if path.symlink_metadata().is_ok() && !ours && Some(path.as_path()) != replacing {
                bail!("ModelCheckpoint(enable_version_counter=False) would overwrite {}, which this run did not write; lthost never replaces such a file (remove it, or turn the version counter on)", path.display());
            }
            return Ok(path);
        }
        let mut v = 1;
        while path.symlink_metadata().is_ok() && Some(path.as_path()) != replacing {
            path = self.dirpath.join(format!("{name}-v{v}.ckpt"));
            v += 1;
        }
        Ok(path)
    }

    /// Where a checkpoint outside the triggers goes (a signal's `last`, `on_exception`): the
    /// name, versioned like the triggers' files so no file this run did not write is
    /// replaced; `last` reuses this run's own `last.ckpt`.
    pub fn side_path(&mut self, name: &str) -> Result<PathBuf> {
        let replacing = if name == "last" { self.last_model_path.clone() } else { None };
        let path = self.versioned(name, replacing.as_deref())?;
        if name == "last" {
            self.last_model_path = Some(path.clone());
        }
        Ok(path)
    }

    fn file_name(&self, metrics: &BTreeMap<String, f64>) -> Result<String> {
        // Unset or empty: Lightning's default (`if not filename`).
        let template = self.cfg.filename.as_deref().filter(|t| !t.is_empty()).unwrap_or("{epoch}-{step}");
        format_name(template, metrics, self.cfg.auto_insert_metric_name)
    }

    fn save_topk(&mut self, plan: &mut SavePlan, at: &Moment<'_>) -> Result<()> {
        if self.cfg.save_top_k == 0 {
            return Ok(());
        }
        let Some(monitor) = self.cfg.monitor.clone() else {
            // No monitor: the newest file (top 1 replaces the previous one; -1 keeps all).
            let path = self.versioned(&self.file_name(at.metrics)?, self.best_model_path.as_deref())?;
            let previous = self.best_model_path.replace(path.clone());
            self.save(plan, path.clone(), at.global_step);
            if let (1, Some(prev)) = (self.cfg.save_top_k, previous) {
                self.drop_later(plan, &prev, &path);
            }
            return Ok(());
        };
        let Some(current) = at.metrics.get(&monitor).copied() else {
            // Lightning's words, its names in Python's repr: the logged values, then `epoch` and
            // `step` as Lightning appends them (the logged ones in lthost's order, by name).
            let last = |k: &&String| k.as_str() == "epoch" || k.as_str() == "step";
            let logged = at.metrics.keys().filter(|k| !last(k));
            let appended = ["epoch", "step"].into_iter().filter(|k| at.metrics.contains_key(*k));
            let known: Vec<String> =
                logged.map(|k| k.as_str()).chain(appended).map(super::py_format::repr_str).collect();
            let monitor_repr = super::py_format::repr_str(&monitor);
            let m = format!("`ModelCheckpoint(monitor={monitor_repr})` could not find the monitored key in the returned metrics: [{}]. HINT: Did you call `log({monitor_repr}, value)` in the `LightningModule`?", known.join(", "));
            if at.val_has_run {
                bail!(m);
            }
            if !self.warned_missing_monitor {
                eprintln!("warning: {m}");
                self.warned_missing_monitor = true;
            }
            return Ok(());
        };
        let k = self.cfg.save_top_k;
        let admit = k == -1
            || (self.best_k.len() as i64) < k
            || self
                .kth_best_model_path
                .as_ref()
                .and_then(|p| self.score_of(p))
                .is_some_and(|kth| self.better(current, kth));
        if admit {
            self.update_best_and_save(plan, at, current)?;
        } else {
            let m = crate::callbacks::py_format::repr_str(&monitor);
            self.say(at, format!("{m} was not in top {k}"));
        }
        Ok(())
    }

    /// Lightning's `rank_zero_info` under `verbose`: "Epoch {epoch}, global step {step}: ...".
    fn say(&mut self, at: &Moment<'_>, what: String) {
        if !self.cfg.verbose {
            return;
        }
        let int = |k: &str| at.metrics.get(k).copied().unwrap_or(0.0) as i64;
        let line = format!("Epoch {}, global step {}: {what}", int("epoch"), int("step"));
        eprintln!("{line}");
        self.said.push(line);
    }

    fn score_of(&self, path: &Path) -> Option<f64> {
        self.best_k.iter().find(|(p, _)| p == path).map(|(_, s)| *s)
    }

    /// The best (or worst) kept file; the first of equal scores wins, as Python's min/max
    /// over the dict.
    fn pick(&self, worst: bool) -> Option<(PathBuf, f64)> {
        self.best_k
            .iter()
            .fold(None::<&(PathBuf, f64)>, |acc, e| match acc {
                Some(a) if !(if worst { self.better(a.1, e.1) } else { self.better(e.1, a.1) }) => acc,
                _ => Some(e),
            })
            .cloned()
    }

    fn update_best_and_save(&mut self, plan: &mut SavePlan, at: &Moment<'_>, current: f64) -> Result<()> {
        let k = if self.cfg.save_top_k == -1 { self.best_k.len() + 1 } else { self.cfg.save_top_k as usize };
        let mut replaced = None;
        if self.best_k.len() == k && k > 0 {
            if let Some(p) = self.kth_best_model_path.clone() {
                self.best_k.retain(|(q, _)| *q != p);
                replaced = Some(p);
            }
        }
        // A NaN score is never the best: it is kept as the worst possible.
        let worst = if self.cfg.mode == "max" { f64::NEG_INFINITY } else { f64::INFINITY };
        let current = if current.is_nan() { worst } else { current };
        let path = self.versioned(&self.file_name(at.metrics)?, replaced.as_deref())?;
        self.current_score = Some(current);
        match self.best_k.iter_mut().find(|(p, _)| *p == path) {
            Some(e) => e.1 = current,
            None => self.best_k.push((path.clone(), current)),
        }
        if self.best_k.len() == k {
            if let Some((p, v)) = self.pick(true) {
                self.kth_best_model_path = Some(p);
                self.kth_value = v;
            }
        }
        if let Some((p, v)) = self.pick(false) {
            self.best_model_path = Some(p);
            self.best_model_score = Some(v);
        }
        if self.cfg.verbose {
            let monitor = self.cfg.monitor.as_deref().unwrap_or_default();
            let (m, f) = (
                crate::callbacks::py_format::repr_str(monitor),
                crate::callbacks::py_format::repr_str(&path.to_string_lossy()),
            );
            let best = self.best_model_score.unwrap_or(current);
            self.say(at, format!("{m} reached {current:.5} (best {best:.5}), saving model to {f} as top {k}"));
        }
        self.save(plan, path.clone(), at.global_step);
        if let Some(prev) = replaced {
            self.drop_later(plan, &prev, &path);
        }
        Ok(())
    }

    fn save_last(&mut self, plan: &mut SavePlan, at: &Moment<'_>) -> Result<()> {
        if self.cfg.save_last == SaveLast::No {
            return Ok(());
        }
        let name = format_name("last", at.metrics, false)?;
        let path = self.versioned(&name, self.last_model_path.as_deref())?;
        let previous = self.last_model_path.replace(path.clone());
        match self.last_checkpoint_saved.clone() {
            // Lightning links to the newest checkpoint saved, when there is one to link to.
            Some(target) if self.cfg.save_last == SaveLast::Link && self.cfg.save_top_k != 0 => {
                if target != path {
                    plan.links.push((path.clone(), target));
                }
            }
            _ => self.save(plan, path.clone(), at.global_step),
        }
        if let Some(prev) = previous {
            self.drop_later(plan, &prev, &path);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_lightnings_templates() {
        let m = BTreeMap::from([
            ("epoch".to_string(), 3.0),
            ("step".to_string(), 120.0),
            ("val_loss".to_string(), 0.12345),
        ]);
        assert_eq!(format_name("{epoch}-{step}", &m, true).unwrap(), "epoch=3-step=120");
        assert_eq!(format_name("model-{epoch}-{val_loss:.2f}", &m, true).unwrap(), "model-epoch=3-val_loss=0.12");
        assert_eq!(format_name("{epoch:03d}-{missing:.1f}", &m, true).unwrap(), "epoch=003-missing=0.0");
        assert_eq!(format_name("ep{epoch:02d}_{val_loss}", &m, false).unwrap(), "ep03_0.12345");
        assert!(format_name("{val_loss:d}", &m, true).is_err(), "a float refuses `d`, as in Python");
    }

    #[test]
    fn keeps_the_top_k_and_never_a_nan_as_best() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CheckpointConfig {
            dirpath: Some(dir.path().into()),
            monitor: Some("loss".into()),
            save_top_k: 2,
            ..CheckpointConfig::default()
        };
        let mut mc = ModelCheckpoint::new(cfg, dir.path()).unwrap();
        let epoch = |mc: &mut ModelCheckpoint, step: u64, loss: f64| {
            let m = BTreeMap::from([
                ("epoch".to_string(), (step - 1) as f64),
                ("step".to_string(), step as f64),
                ("loss".to_string(), loss),
            ]);
            let at = Moment { metrics: &m, global_step: step, val_has_run: true };
            let plan = mc.on_train_epoch_end(&at, step - 1, true).unwrap();
            for p in &plan.paths {
                std::fs::write(p, b"x").unwrap();
            }
            plan
        };
        mc.cfg.verbose = true;
        assert_eq!(epoch(&mut mc, 1, f64::NAN).paths.len(), 1);
        assert_eq!(epoch(&mut mc, 2, 0.7).paths.len(), 1);
        assert_eq!(mc.best_model_score, Some(0.7), "the NaN is kept as +inf");
        let p = epoch(&mut mc, 3, 0.6);
        assert_eq!(p.remove, vec![dir.path().join("epoch=0-step=1.ckpt")]);
        assert!(epoch(&mut mc, 4, 0.9).paths.is_empty());
        assert!(epoch(&mut mc, 5, f64::NAN).paths.is_empty());
        assert_eq!(mc.best_model_score, Some(0.6));
        // Lightning's verbose lines for these five epochs (its f-strings: `{current:0.5f}`, the
        // monitor and the path as Python's repr).
        let d = dir.path().display();
        assert_eq!(
            mc.said,
            [
                format!("Epoch 0, global step 1: 'loss' reached inf (best inf), saving model to '{d}/epoch=0-step=1.ckpt' as top 2"),
                format!("Epoch 1, global step 2: 'loss' reached 0.70000 (best 0.70000), saving model to '{d}/epoch=1-step=2.ckpt' as top 2"),
                format!("Epoch 2, global step 3: 'loss' reached 0.60000 (best 0.60000), saving model to '{d}/epoch=2-step=3.ckpt' as top 2"),
                "Epoch 3, global step 4: 'loss' was not in top 2".to_string(),
                "Epoch 4, global step 5: 'loss' was not in top 2".to_string(),
            ]
        );
        let m = BTreeMap::from([("step".to_string(), 6.0)]);
        let at = Moment { metrics: &m, global_step: 6, val_has_run: true };
        assert!(mc.on_train_epoch_end(&at, 5, true).is_err(), "a missing monitor after validation is an error");
        let at = Moment { metrics: &m, global_step: 7, val_has_run: false };
        assert!(mc.on_train_epoch_end(&at, 6, true).unwrap().paths.is_empty(), "before any validation: a warning");
    }

    #[test]
    fn never_replaces_a_file_this_run_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("epoch=0-step=1.ckpt"), b"someone else's").unwrap();
        let cfg = CheckpointConfig {
            dirpath: Some(dir.path().into()),
            enable_version_counter: false,
            ..CheckpointConfig::default()
        };
        let mut mc = ModelCheckpoint::new(cfg, dir.path()).unwrap();
        let m = BTreeMap::from([("epoch".to_string(), 0.0), ("step".to_string(), 1.0)]);
        let at = Moment { metrics: &m, global_step: 1, val_has_run: false };
        let e = mc.on_train_epoch_end(&at, 0, true).unwrap_err().to_string();
        assert!(e.contains("never replaces"), "{e}");
        let cfg = CheckpointConfig {
            dirpath: Some(dir.path().into()),
            filename: Some("{epoch}/{step}".into()),
            ..CheckpointConfig::default()
        };
        let mut mc = ModelCheckpoint::new(cfg, dir.path()).unwrap();
        let e = mc.on_train_epoch_end(&at, 0, true).unwrap_err().to_string();
        assert!(e.contains("not a plain file name"), "{e}");
        let cfg = CheckpointConfig { dirpath: Some(dir.path().into()), ..CheckpointConfig::default() };
        let mut mc = ModelCheckpoint::new(cfg, dir.path()).unwrap();
        let p = mc.on_train_epoch_end(&at, 0, true).unwrap();
        assert_eq!(p.paths, vec![dir.path().join("epoch=0-step=1-v1.ckpt")], "the counter versions it instead");
        std::fs::write(dir.path().join("last.ckpt"), b"an earlier run's").unwrap();
        assert_eq!(mc.side_path("last").unwrap(), dir.path().join("last-v1.ckpt"), "a signal's save too");
    }

    #[test]
    fn a_dirpath_under_home_is_expanded() {
        let at =
            |d: &str| CheckpointConfig { dirpath: Some(d.into()), ..CheckpointConfig::default() }.resolved_dirpath();
        // Expanded from HOME only: a run without one keeps `~` (Python falls back to the user
        // database).
        let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from) else { return };
        assert_eq!(at("~/runs/ckpt"), Some(home.join("runs/ckpt")));
        assert_eq!(at("~"), Some(home));
        // Only a leading `~` component: `~user`, a `~` inside and relative paths stay.
        assert_eq!(at("~other/x"), Some(PathBuf::from("~other/x")));
        assert_eq!(at("a/~/b"), Some(PathBuf::from("a/~/b")));
        assert_eq!(CheckpointConfig::default().resolved_dirpath(), None);
    }

    #[test]
    fn refuses_what_lightning_refuses() {
        let c = |f: fn(&mut CheckpointConfig)| {
            let mut cfg = CheckpointConfig::default();
            f(&mut cfg);
            cfg.validate().err().map(|e| e.to_string())
        };
        assert_eq!(
            c(|c| (c.every_n_train_steps, c.every_n_epochs) = (Some(2), Some(1))).as_deref(),
            Some("Combination of parameters every_n_train_steps=2, every_n_epochs=1 and train_time_interval=None should be mutually exclusive.")
        );
        assert!(c(|c| c.train_time_interval_s = Some(90.0)).is_none(), "a time trigger alone turns the epoch one off");
        assert_eq!(
            c(|c| (c.train_time_interval_s, c.every_n_epochs) = (Some(90.5), Some(1))).as_deref(),
            Some("Combination of parameters every_n_train_steps=0, every_n_epochs=1 and train_time_interval=0:01:30.500000 should be mutually exclusive.")
        );
        assert_eq!(CheckpointConfig { every_n_train_steps: Some(5), ..Default::default() }.triggers(), (0, 5));
        let mc = ModelCheckpoint::new(CheckpointConfig::default(), Path::new("/nonexistent")).unwrap();
        let when = |val_batches, every, by_time, interval| ValidationSchedule {
            val_batches,
            check_val_every_n_epoch: every,
            by_time,
            val_check_interval: interval,
        };
        assert!(mc.saves_on_train_epoch_end(when(4, Some(1), false, Some(Limit::Fraction(1.0)))));
        assert!(!mc.saves_on_train_epoch_end(when(4, Some(1), true, None)), "by time: at validation ends");
        assert!(!mc.saves_on_train_epoch_end(when(4, Some(2), false, Some(Limit::Fraction(1.0)))));
        assert!(!mc.saves_on_train_epoch_end(when(4, Some(1), false, Some(Limit::Batches(4)))));
        assert!(mc.saves_on_train_epoch_end(when(4, Some(1), false, Some(Limit::Batches(1)))));
        assert!(mc.saves_on_train_epoch_end(when(0, Some(2), true, None)), "no validation: at epoch ends");
        assert_eq!(CheckpointConfig::default().triggers(), (1, 0));
    }
}
