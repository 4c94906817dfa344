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

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::run_dir::RunDir;

/// `[checkpoint]` in the run file: ModelCheckpoint's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Unset: `<log dir>/checkpoints`.
    pub dirpath: Option<PathBuf>,
    /// Template, e.g. "{epoch}-{step}-{val_loss:.2f}"; unset: "{epoch}-{step}".
    pub filename: Option<String>,
    pub monitor: Option<String>,
    /// "min" or "max".
    pub mode: String,
    /// -1: keep all; 0: none (only `last`, if save_last).
    pub save_top_k: i64,
    pub save_last: bool,
    pub every_n_train_steps: u64,
    pub every_n_epochs: u64,
    /// Save at most once per this many seconds of training (checked after each batch).
    pub train_time_interval_s: Option<f64>,
    pub save_weights_only: bool,
    /// Save at the end of the training epoch (true) or of validation (false). Unset: at
    /// the training epoch's end unless the epoch validates, as Lightning decides.
    pub save_on_train_epoch_end: Option<bool>,
    /// Lightning's OnExceptionCheckpoint: when the run fails, save `on_exception.ckpt`.
    pub on_exception: bool,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            dirpath: None,
            filename: None,
            monitor: None,
            mode: "min".into(),
            save_top_k: 1,
            save_last: false,
            every_n_train_steps: 0,
            every_n_epochs: 1,
            train_time_interval_s: None,
            save_weights_only: false,
            save_on_train_epoch_end: None,
            on_exception: false,
        }
    }
}

impl CheckpointConfig {
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.mode.as_str(), "min" | "max") {
            bail!("checkpoint.mode must be \"min\" or \"max\", got {:?}", self.mode);
        }
        if self.save_top_k < -1 {
            bail!("checkpoint.save_top_k must be -1, 0 or a count");
        }
        if self.monitor.is_none() && self.save_top_k > 1 {
            bail!("checkpoint.save_top_k = {} needs a `monitor` (Lightning refuses it too)", self.save_top_k);
        }
        if self.train_time_interval_s.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
            bail!("checkpoint.train_time_interval_s must be a positive number");
        }
        Ok(())
    }
}

/// Fills a filename template: `{epoch}` → `epoch=3`, `{val_loss:.2f}` → `val_loss=0.12`.
pub fn format_name(template: &str, metrics: &BTreeMap<String, f64>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &rest[open + 1..open + close];
        let (name, spec) = inner.split_once(':').unwrap_or((inner, ""));
        let value = metrics.get(name).copied().unwrap_or(0.0);
        let text = match spec.strip_prefix('.').and_then(|s| s.strip_suffix('f')).and_then(|p| p.parse::<usize>().ok())
        {
            Some(p) => format!("{value:.p$}"),
            None if name == "epoch" || name == "step" => format!("{}", value as i64),
            None => format!("{value}"),
        };
        out.push_str(&format!("{name}={text}"));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// ModelCheckpoint's state key starts so (Lightning's `ModelCheckpoint{'monitor': …}`).
pub const STATE_KEY_PREFIX: &str = "ModelCheckpoint";

pub struct ModelCheckpoint {
    pub cfg: CheckpointConfig,
    pub dirpath: PathBuf,
    /// Kept checkpoints and their monitored scores.
    pub best_k: Vec<(PathBuf, f64)>,
    pub best_model_path: Option<PathBuf>,
    pub best_model_score: Option<f64>,
    pub last_model_path: Option<PathBuf>,
    /// The step of the last save (a step is saved once).
    pub last_saved_step: Option<u64>,
    /// When the last save happened (train_time_interval).
    pub last_time: std::time::Instant,
    /// The checkpoint directory, opened on first use.
    dir: Option<RunDir>,
    /// File names it may remove: those this run wrote in the directory and those a resumed
    /// checkpoint listed that [`ModelCheckpoint::load_state`] accepted.
    owned: HashSet<String>,
}

/// What a trigger decided: save these paths (the top-k file and/or `last`).
#[derive(Debug, Default)]
pub struct SavePlan {
    pub paths: Vec<PathBuf>,
    pub remove: Vec<PathBuf>,
}

impl ModelCheckpoint {
    pub fn new(cfg: CheckpointConfig, default_dir: &Path) -> Result<Self> {
        cfg.validate()?;
        let dirpath = cfg.dirpath.clone().unwrap_or_else(|| default_dir.join("checkpoints"));
        let dir = RunDir::open_existing(&dirpath);
        // A process killed mid-write leaves its temp file (lthost's own prefix, with its pid);
        // the finished files are whole. Only those of processes that are gone are removed.
        if let Some(d) = &dir {
            for (name, link) in d.entries() {
                if !link && crate::loggers::is_stale_temp(&name) {
                    let _ = d.remove(&name);
                }
            }
        }
        Ok(ModelCheckpoint {
            cfg,
            dirpath,
            best_k: Vec::new(),
            best_model_path: None,
            best_model_score: None,
            last_model_path: None,
            last_saved_step: None,
            last_time: std::time::Instant::now(),
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
                if let Err(e) = dir.remove(&name) {
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

    pub fn state_key(&self) -> String {
        format!("{STATE_KEY_PREFIX}{{'monitor': {:?}, 'mode': {:?}}}", self.cfg.monitor, self.cfg.mode)
    }

    pub fn state(&self) -> Value {
        let best_k: BTreeMap<String, f64> = self.best_k.iter().map(|(p, s)| (p.display().to_string(), *s)).collect();
        json!({
            "dirpath": self.dirpath,
            "best_model_path": self.best_model_path,
            "best_model_score": self.best_model_score,
            "last_model_path": self.last_model_path,
            "best_k_models": best_k,
        })
    }

    /// Puts back the kept files from a checkpoint's state. `plugin_sha256`: the running
    /// plugin's; a listed file is kept only if it lies directly in this run's checkpoint
    /// directory and is a checkpoint of that plugin (else it is dropped, with a warning, and
    /// never removed later).
    pub fn load_state(&mut self, s: &Value, plugin_sha256: &str) {
        let dir = RunDir::open_existing(&self.dirpath);
        let accept = |v: &Value| -> Option<PathBuf> {
            let p = PathBuf::from(v.as_str()?);
            let ok = dir.as_ref().and_then(|d| Some((d, d.name_of(&p)?))).is_some_and(|(d, name)| {
                crate::checkpoint::read_meta(d, &name).is_ok_and(|m| m.plugin_sha256 == plugin_sha256)
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
        self.best_model_score = self.best_model_path.as_ref().and(s["best_model_score"].as_f64());
        self.last_model_path = s.get("last_model_path").filter(|v| !v.is_null()).and_then(accept);
        if let Some(m) = s["best_k_models"].as_object() {
            self.best_k =
                m.iter().filter_map(|(p, v)| Some((accept(&Value::String(p.clone()))?, v.as_f64()?))).collect();
        }
        for p in self
            .best_k
            .iter()
            .map(|(p, _)| Some(p.clone()))
            .chain([self.best_model_path.clone(), self.last_model_path.clone()])
        {
            accepted(&p, &mut self.owned);
        }
    }

    fn better(&self, a: f64, b: f64) -> bool {
        if self.cfg.mode == "max" {
            a > b
        } else {
            a < b
        }
    }

    /// Whether `train_time_interval_s` has passed since the last save.
    pub fn time_is_due(&self) -> bool {
        self.cfg.train_time_interval_s.is_some_and(|t| self.last_time.elapsed().as_secs_f64() >= t)
    }

    /// Whether the epoch trigger fires at the training epoch's end (else at validation's
    /// end). Lightning's default: at the training epoch's end when there is no validation or
    /// validation runs exactly once at the end of every epoch.
    pub fn saves_on_train_epoch_end(&self, validation_at_epoch_end: bool) -> bool {
        self.cfg.save_on_train_epoch_end.unwrap_or(validation_at_epoch_end)
    }

    fn unique(&self, name: &str, keep: &[PathBuf]) -> PathBuf {
        let mut path = self.dirpath.join(format!("{name}.ckpt"));
        let mut v = 1;
        while path.symlink_metadata().is_ok() && !keep.contains(&path) {
            path = self.dirpath.join(format!("{name}-v{v}.ckpt"));
            v += 1;
        }
        path
    }

    /// Decides what to save for a trigger at `metrics` (which include epoch and step).
    pub fn plan(&mut self, metrics: &BTreeMap<String, f64>) -> Result<SavePlan> {
        let mut plan = SavePlan::default();
        let step = metrics.get("step").copied().unwrap_or(0.0) as u64;
        if self.last_saved_step == Some(step) {
            return Ok(plan);
        }
        self.last_saved_step = Some(step);
        self.last_time = std::time::Instant::now();
        let template = self.cfg.filename.clone().unwrap_or_else(|| "{epoch}-{step}".into());
        if self.cfg.save_top_k != 0 {
            let score = match &self.cfg.monitor {
                Some(m) => match metrics.get(m) {
                    Some(v) => Some(*v),
                    None => {
                        let known: Vec<&String> = metrics.keys().collect();
                        bail!("ModelCheckpoint(monitor={m:?}) could not find the monitored key in the returned metrics: {known:?}");
                    }
                },
                None => None,
            };
            let keep: Vec<PathBuf> = self.best_k.iter().map(|(p, _)| p.clone()).collect();
            let path = self.unique(&format_name(&template, metrics), &keep);
            match score {
                Some(s) => {
                    let k = self.cfg.save_top_k;
                    let full = k >= 0 && self.best_k.len() as i64 >= k;
                    let worst = self.best_k.iter().enumerate().fold(None::<(usize, f64)>, |w, (i, (_, v))| match w {
                        Some((_, wv)) if !self.better(wv, *v) => w,
                        _ => Some((i, *v)),
                    });
                    let admit = !full || worst.is_some_and(|(_, wv)| self.better(s, wv));
                    if admit {
                        if full {
                            if let Some((i, _)) = worst {
                                let (old, _) = self.best_k.remove(i);
                                plan.remove.push(old);
                            }
                        }
                        self.best_k.push((path.clone(), s));
                        plan.paths.push(path);
                    }
                    if let Some((p, v)) = self.best_k.iter().fold(None::<&(PathBuf, f64)>, |b, e| match b {
                        Some(bv) if !self.better(e.1, bv.1) => b,
                        _ => Some(e),
                    }) {
                        self.best_model_path = Some(p.clone());
                        self.best_model_score = Some(*v);
                    }
                }
                None => {
                    // No monitor: keep the latest only (save_top_k 1) or all (-1).
                    if self.cfg.save_top_k == 1 {
                        plan.remove.extend(self.best_k.drain(..).map(|(p, _)| p));
                    }
                    self.best_k.push((path.clone(), step as f64));
                    self.best_model_path = Some(path.clone());
                    plan.paths.push(path);
                }
            }
        }
        if self.cfg.save_last {
            let last = self.dirpath.join("last.ckpt");
            self.last_model_path = Some(last.clone());
            plan.paths.push(last);
        }
        plan.remove.retain(|p| !plan.paths.contains(p));
        Ok(plan)
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
        assert_eq!(format_name("{epoch}-{step}", &m), "epoch=3-step=120");
        assert_eq!(format_name("model-{epoch}-{val_loss:.2f}", &m), "model-epoch=3-val_loss=0.12");
    }

    #[test]
    fn keeps_the_top_k() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CheckpointConfig {
            dirpath: Some(dir.path().into()),
            monitor: Some("loss".into()),
            save_top_k: 2,
            ..CheckpointConfig::default()
        };
        let mut mc = ModelCheckpoint::new(cfg, dir.path()).unwrap();
        let at = |step: f64, loss: f64| {
            BTreeMap::from([("epoch".to_string(), 0.0), ("step".to_string(), step), ("loss".to_string(), loss)])
        };
        assert_eq!(mc.plan(&at(1.0, 0.5)).unwrap().paths.len(), 1);
        assert_eq!(mc.plan(&at(2.0, 0.7)).unwrap().paths.len(), 1);
        let p = mc.plan(&at(3.0, 0.6)).unwrap();
        assert_eq!(p.paths.len(), 1);
        assert_eq!(p.remove, vec![dir.path().join("epoch=0-step=2.ckpt")]);
        assert!(mc.plan(&at(4.0, 0.9)).unwrap().paths.is_empty());
        assert_eq!(mc.best_model_score, Some(0.5));
        assert!(mc.plan(&BTreeMap::from([("step".to_string(), 5.0)])).is_err(), "a missing monitor is an error");
    }
}
