//! Lightning's `MLFlowLogger`, over MLflow's REST API (no Python): the experiment by name
//! (made when missing), a run with `run_name` (the `mlflow.runName` tag) and `tags`, the
//! hyper-parameters flattened with `/` as `str(value)[:250]`, metrics with their step and a
//! millisecond timestamp (keys cleaned as Lightning cleans them), ModelCheckpoint's files as
//! artifacts when `log_model` asks, and the run's status at the end (FINISHED, FAILED).
//!
//! Where Lightning's own default tracking URI is MLflow's file store (`file:./mlruns`),
//! lthost needs a tracking server: `tracking_uri`, else `MLFLOW_TRACKING_URI`.

pub mod rest;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{prefixed, CheckpointSaved, Logger, Version};
use rest::Tracking;

/// Lightning's `log_model`: False, True (at the end) or "all" (as they are saved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogModel {
    Flag(bool),
    Named(String),
}

impl Default for LogModel {
    fn default() -> Self {
        LogModel::Flag(false)
    }
}

/// `[loggers.mlflow]`: MLFlowLogger's arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlflowOptions {
    pub experiment_name: String,
    pub run_name: Option<String>,
    /// `http(s)://…` of a tracking server; default `MLFLOW_TRACKING_URI`.
    pub tracking_uri: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub log_model: LogModel,
    /// Put before every metric key, joined with `-`.
    pub prefix: String,
    /// The artifact location of an experiment this run makes.
    pub artifact_location: Option<String>,
    /// Log into this existing run instead of a new one.
    pub run_id: Option<String>,
}

impl Default for MlflowOptions {
    fn default() -> Self {
        MlflowOptions {
            experiment_name: "lightning_logs".into(),
            run_name: None,
            tracking_uri: None,
            tags: BTreeMap::new(),
            log_model: LogModel::default(),
            prefix: String::new(),
            artifact_location: None,
            run_id: None,
        }
    }
}

impl MlflowOptions {
    pub fn validate(&self) -> Result<()> {
        if let LogModel::Named(s) = &self.log_model {
            if s != "all" {
                anyhow::bail!("loggers.mlflow.log_model = {s:?}: expected true, false or \"all\"");
            }
        }
        Ok(())
    }
}

/// MLflow's limits per `log-batch`.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS: usize = 100;
/// Lightning's `str(v)[:250]`.
const MAX_PARAM_CHARS: usize = 250;

pub struct MlflowLogger {
    tracking: Tracking,
    run_id: String,
    experiment_id: String,
    artifact_uri: String,
    /// `<default_root_dir>/<experiment id>/<run id>`: where checkpoints go (Lightning's
    /// ModelCheckpoint under an MLFlowLogger without a `save_dir`).
    dir: PathBuf,
    prefix: String,
    log_model: LogModel,
    /// The latest ModelCheckpoint state, and when each file was last uploaded.
    checkpoint: Option<CheckpointSaved>,
    uploaded: HashMap<PathBuf, SystemTime>,
    warned_keys: bool,
}

impl MlflowLogger {
    /// Finds or makes the experiment and the run.
    pub fn open(opts: &MlflowOptions, root: &Path) -> Result<Self> {
        let uri = opts
            .tracking_uri
            .clone()
            .or_else(|| std::env::var("MLFLOW_TRACKING_URI").ok().filter(|u| !u.is_empty()))
            .ok_or_else(|| {
                anyhow!(
                    "the MLflow logger needs a tracking server: `tracking_uri = \"http://127.0.0.1:5000\"` in [loggers.mlflow], or \
                     MLFLOW_TRACKING_URI (Lightning's default `file:./mlruns` is MLflow's file store, which only MLflow writes)"
                )
            })?;
        let tracking = Tracking::new(&uri)?;
        let info = match &opts.run_id {
            Some(id) => tracking.get_run(id)?,
            None => {
                let exp = tracking.experiment(&opts.experiment_name, opts.artifact_location.as_deref())?;
                // MLflow's resolve_tags: the user and the source, then the user's tags.
                let mut tags: BTreeMap<String, String> = BTreeMap::new();
                if let Ok(u) = std::env::var("USER") {
                    tags.insert("mlflow.user".into(), u);
                }
                tags.insert("mlflow.source.name".into(), "lthost".into());
                tags.insert("mlflow.source.type".into(), "LOCAL".into());
                tags.extend(opts.tags.clone());
                if let Some(name) = &opts.run_name {
                    if opts.tags.contains_key("mlflow.runName") {
                        eprintln!("warning: the tag mlflow.runName is replaced by run_name {name:?}");
                    }
                    tags.insert("mlflow.runName".into(), name.clone());
                }
                let tags: Vec<(String, String)> = tags.into_iter().collect();
                tracking.create_run(&exp, &tags)?
            }
        };
        // The ids name directories (checkpoints, logger plugins' grants): the server's word for
        // them is checked, never joined as a path.
        for (what, id) in [("experiment id", &info.experiment_id), ("run id", &info.run_id)] {
            let plain = !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !plain {
                anyhow::bail!("MLflow: the tracking server gave the {what} {id:?}, which is not an MLflow id (letters, digits, `-`, `_`); refused");
            }
        }
        let dir = root.join(&info.experiment_id).join(&info.run_id);
        Ok(MlflowLogger {
            tracking,
            run_id: info.run_id,
            experiment_id: info.experiment_id,
            artifact_uri: info.artifact_uri,
            dir,
            prefix: opts.prefix.clone(),
            log_model: opts.log_model.clone(),
            checkpoint: None,
            uploaded: HashMap::new(),
            warned_keys: false,
        })
    }

    /// Uploads ModelCheckpoint's files not uploaded since they last changed (Lightning's
    /// `_scan_and_log_checkpoints`): each into `<stem>/` with `metadata.yaml` and
    /// `aliases.txt`.
    fn upload_checkpoints(&mut self) -> Result<()> {
        let Some(c) = self.checkpoint.clone() else { return Ok(()) };
        // Lightning's dict: last (current score), best, then the best k (a later key wins).
        let mut scored: Vec<(String, Option<f64>)> = Vec::new();
        let mut put = |name: &str, score: Option<f64>| {
            if name.is_empty() {
                return;
            }
            scored.retain(|(n, _)| n != name);
            scored.push((name.to_string(), score));
        };
        put(&c.last_model_path, c.current_score);
        put(&c.best_model_path, c.best_model_score);
        for (n, s) in &c.best_k_models {
            put(n, Some(*s));
        }
        let mut found: Vec<(SystemTime, PathBuf, Option<f64>)> = scored
            .into_iter()
            .filter_map(|(n, s)| {
                let p = c.dir.join(&n);
                let t = std::fs::metadata(&p).ok().filter(|m| m.is_file())?.modified().ok()?;
                Some((t, p, s))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (t, p, score) in found {
            if self.uploaded.get(&p).is_some_and(|done| *done >= t) {
                continue;
            }
            let file = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let stem = p.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let bytes =
                std::fs::read(&p).map_err(|e| anyhow!("MLflow: reading the checkpoint {}: {e}", p.display()))?;
            self.tracking.upload_artifact(&self.artifact_uri, &format!("{stem}/{file}"), &bytes)?;
            let num = |v: Option<f64>| v.map_or(Value::Null, |v| json!(v));
            let metadata = json!({
                "score": num(score),
                "original_filename": file,
                "Checkpoint": c.settings,
            });
            let yaml = super::python_text::yaml_dump(&metadata);
            self.tracking.upload_artifact(&self.artifact_uri, &format!("{stem}/metadata.yaml"), yaml.as_bytes())?;
            let best = c.best_model_path == file;
            let aliases = if best { "['latest', 'best']" } else { "['latest']" };
            self.tracking.upload_artifact(&self.artifact_uri, &format!("{stem}/aliases.txt"), aliases.as_bytes())?;
            self.uploaded.insert(p, t);
        }
        Ok(())
    }

    fn logs_every_save(&self, save_top_k: i64) -> bool {
        match &self.log_model {
            LogModel::Named(_) => true,
            LogModel::Flag(true) => save_top_k == -1,
            LogModel::Flag(false) => false,
        }
    }
}

/// Lightning's `_flatten_dict` with `/` (a list of tables flattens as `key/<i>/…`).
fn flatten(params: &Map<String, Value>, parent: &str, out: &mut Vec<(String, String)>) {
    for (k, v) in params {
        let key = if parent.is_empty() { k.clone() } else { format!("{parent}/{k}") };
        match v {
            Value::Object(inner) => flatten(inner, &key, out),
            Value::Array(items) if items.iter().all(Value::is_object) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(inner) = item {
                        flatten(inner, &format!("{key}/{i}"), out);
                    }
                }
            }
            // Python's str(): a string as it is, anything else as its repr.
            Value::String(s) => out.push((key, s.clone())),
            other => out.push((key, super::python_text::repr(other))),
        }
    }
}

/// Lightning's `re.sub("[^a-zA-Z0-9_/. -]+", "", key)`.
fn clean_key(k: &str) -> String {
    k.chars().filter(|c| c.is_ascii_alphanumeric() || "_/. -".contains(*c)).collect()
}

/// A metric value as MLflow's JSON takes it (NaN and ±inf as strings).
fn metric_value(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

impl Logger for MlflowLogger {
    /// Lightning's `name`: the experiment's id.
    fn name(&self) -> &str {
        &self.experiment_id
    }
    /// Lightning's `version`: the run's id.
    fn version(&self) -> Version {
        Version::Name(self.run_id.clone())
    }
    fn log_dir(&self) -> &Path {
        &self.dir
    }
    fn log_hyperparams(&mut self, hparams: &Value) -> Result<()> {
        let mut flat = Vec::new();
        if let Some(m) = hparams.as_object() {
            flatten(m, "", &mut flat);
        }
        let params: Vec<Value> = flat
            .into_iter()
            .map(|(k, v)| json!({ "key": k, "value": v.chars().take(MAX_PARAM_CHARS).collect::<String>() }))
            .collect();
        for chunk in params.chunks(MAX_PARAMS) {
            self.tracking.log_batch(&self.run_id, &[], chunk)?;
        }
        Ok(())
    }
    fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()> {
        let ts = rest::now_ms();
        let mut out = Vec::with_capacity(metrics.len());
        for (k, v) in prefixed(metrics, &self.prefix).iter() {
            let key = clean_key(k);
            if key != *k && !self.warned_keys {
                self.warned_keys = true;
                eprintln!(
                    "warning: MLflow only allows '_', '/', '.' and ' ' special characters in metric name. Replacing {k} with {key}."
                );
            }
            out.push(json!({ "key": key, "value": metric_value(*v), "timestamp": ts, "step": step }));
        }
        for chunk in out.chunks(MAX_METRICS) {
            self.tracking.log_batch(&self.run_id, chunk, &[])?;
        }
        Ok(())
    }
    fn save(&mut self) -> Result<()> {
        Ok(())
    }
    fn after_save_checkpoint(&mut self, saved: &CheckpointSaved) -> Result<()> {
        self.checkpoint = Some(saved.clone());
        if self.logs_every_save(saved.save_top_k) {
            self.upload_checkpoints()?;
        }
        Ok(())
    }
    /// Checkpoints still to upload (log_model = true), then the run's end: FINISHED for
    /// "success", FAILED for "failed" (Lightning's mapping).
    fn finalize(&mut self, status: &str) -> Result<()> {
        let uploaded = if self.log_model != LogModel::Flag(false) { self.upload_checkpoints() } else { Ok(()) };
        let status = match status {
            "success" | "finished" => "FINISHED",
            "failed" => "FAILED",
            other => other,
        };
        let ended = self.tracking.end_run(&self.run_id, status);
        uploaded.and(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_flatten_and_keys_clean_as_lightning_does() {
        let mut out = Vec::new();
        let hp = json!({"lr": 0.001, "name": "mlp", "opt": {"betas": [0.9, 0.999], "amsgrad": false}, "layers": [{"n": 2}], "none": null});
        flatten(hp.as_object().unwrap(), "", &mut out);
        let got: BTreeMap<String, String> = out.into_iter().collect();
        let want: BTreeMap<String, String> = [
            ("layers/0/n", "2"),
            ("lr", "0.001"),
            ("name", "mlp"),
            ("none", "None"),
            ("opt/amsgrad", "False"),
            ("opt/betas", "[0.9, 0.999]"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(clean_key("val/acc@1 (top)"), "val/acc1 top");
        assert_eq!(metric_value(f64::NEG_INFINITY), json!("-Infinity"));
    }
}
