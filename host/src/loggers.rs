//! Experiment loggers. The CSV logger writes Lightning's layout
//! (`<root>/lightning_logs/version_N/{metrics.csv,hparams.yaml}`); [`options`] says where
//! each built-in logger writes.

pub mod csv;
pub mod mlflow;
pub mod options;
pub mod python_text;
pub mod tensorboard;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

pub use csv::CsvLogger;
pub use mlflow::MlflowLogger;
pub use options::{LoggerOptions, LoggersConfig, Version};
pub use tensorboard::TensorBoardLogger;

/// What a logger's `after_save_checkpoint` is told: ModelCheckpoint's state when it has
/// written a file, files by their names in the checkpoint directory ("" for none; a logger
/// plugin is not told where the host keeps them).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointSaved {
    /// The file just written.
    pub saved: String,
    /// The checkpoint directory (the host's loggers upload from it; plugins are not told).
    pub dir: std::path::PathBuf,
    /// The score of the step just saved (Lightning's `current_score`).
    pub current_score: Option<f64>,
    /// ModelCheckpoint's settings as MLFlowLogger's `metadata.yaml` lists them (`monitor`,
    /// `mode`, `save_last`, `save_top_k`, `save_weights_only`, `_every_n_train_steps`).
    pub settings: Value,
    pub monitor: Option<String>,
    pub save_top_k: i64,
    pub best_model_path: String,
    pub best_model_score: Option<f64>,
    pub last_model_path: String,
    pub best_k_models: Vec<(String, f64)>,
}

/// Several loggers at once (Lightning's `logger=[...]`); the first names the run and its
/// directory holds the checkpoints.
pub struct LoggerGroup(pub Vec<Box<dyn Logger>>);

impl Logger for LoggerGroup {
    fn name(&self) -> &str {
        self.0.first().map(|l| l.name()).unwrap_or("lightning_logs")
    }
    /// Lightning's `_version`: one logger's version, or the distinct versions joined by `_`.
    fn version(&self) -> Version {
        let mut seen: Vec<String> = Vec::new();
        for v in self.0.iter().map(|l| l.version().to_string()) {
            if !seen.contains(&v) {
                seen.push(v);
            }
        }
        match (self.0.len(), seen.len()) {
            (0, _) => Version::Number(0),
            (_, 1) => self.0[0].version(),
            _ => Version::Name(seen.join("_")),
        }
    }
    fn log_dir(&self) -> &Path {
        self.0.first().map(|l| l.log_dir()).unwrap_or(Path::new("."))
    }
    fn version_dir(&self) -> &Path {
        self.0.first().map(|l| l.version_dir()).unwrap_or(Path::new("."))
    }
    fn log_hyperparams(&mut self, hparams: &Value) -> Result<()> {
        self.0.iter_mut().try_for_each(|l| l.log_hyperparams(hparams))
    }
    fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()> {
        self.0.iter_mut().try_for_each(|l| l.log_metrics(metrics, step))
    }
    fn save(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|l| l.save())
    }
    fn after_save_checkpoint(&mut self, saved: &CheckpointSaved) -> Result<()> {
        self.0.iter_mut().try_for_each(|l| l.after_save_checkpoint(saved))
    }
    /// Every logger is finalized even when one fails; the first error is returned.
    fn finalize(&mut self, status: &str) -> Result<()> {
        let mut first = None;
        for l in &mut self.0 {
            if let Err(e) = l.finalize(status) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

pub trait Logger {
    fn name(&self) -> &str;
    fn version(&self) -> Version;
    /// Where the logger writes (TensorBoard's `sub_dir` included: Lightning's `log_dir`).
    fn log_dir(&self) -> &Path;
    /// `<save_dir>/<name>/<version>`: where the checkpoints go when this logger is the first
    /// (Lightning's ModelCheckpoint leaves out TensorBoard's `sub_dir`).
    fn version_dir(&self) -> &Path {
        self.log_dir()
    }
    fn log_hyperparams(&mut self, hparams: &Value) -> Result<()>;
    fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()>;
    /// Writes what is buffered.
    fn save(&mut self) -> Result<()>;
    /// Lightning's `after_save_checkpoint`: ModelCheckpoint wrote a file (the built-in
    /// loggers do nothing, as Lightning's CSV and TensorBoard loggers).
    fn after_save_checkpoint(&mut self, _saved: &CheckpointSaved) -> Result<()> {
        Ok(())
    }
    /// The run ended: "success", or "failed" (Lightning's `finalize`; a signal's end too, as
    /// Lightning's `_interrupt` finalizes with "failed" for KeyboardInterrupt and SIGTERM).
    fn finalize(&mut self, _status: &str) -> Result<()> {
        self.save()
    }
}

/// Lightning's `_add_prefix`: every key as `<prefix>-<key>`; no prefix: as they are (not
/// copied: a row is logged every step).
pub fn prefixed<'m>(metrics: &'m BTreeMap<String, f64>, prefix: &str) -> std::borrow::Cow<'m, BTreeMap<String, f64>> {
    if prefix.is_empty() {
        return std::borrow::Cow::Borrowed(metrics);
    }
    std::borrow::Cow::Owned(metrics.iter().map(|(k, v)| (format!("{prefix}-{k}"), *v)).collect())
}

/// The next free `version_N` under `root/name`, numbered as Lightning's `_get_next_version`:
/// one past the largest N of the directories named `version_N…` (the text between the first
/// and second `_` all digits: `version_3_old` counts as 3), files ignored.
pub fn next_version(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let n = name.strip_prefix("version_")?.split('_').next()?.to_string();
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| n.parse::<u64>().ok()).flatten()
        })
        .map(|v| v + 1)
        .max()
        .unwrap_or(0)
}

/// hparams as Lightning's `hparams.yaml` holds them (`yaml.dump`, see [`python_text`]).
pub fn to_yaml(v: &Value) -> String {
    python_text::yaml_dump(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(next_version(d.path()), 0);
        std::fs::create_dir(d.path().join("version_0")).unwrap();
        std::fs::create_dir(d.path().join("version_3")).unwrap();
        assert_eq!(next_version(d.path()), 4);
        // Lightning's reading: a directory `version_5_old` is version 5; a file `version_9` and a
        // directory `version_x` are not versions.
        std::fs::create_dir(d.path().join("version_5_old")).unwrap();
        std::fs::write(d.path().join("version_9"), b"").unwrap();
        std::fs::create_dir(d.path().join("version_x")).unwrap();
        assert_eq!(next_version(d.path()), 6);
        // Lightning's test_automatic_versioning (docs/lightning-tests/loggers.md row 1).
        let e = tempfile::tempdir().unwrap();
        for name in ["version_0", "version_1", "version_nonumber", "other"] {
            std::fs::create_dir(e.path().join(name)).unwrap();
        }
        assert_eq!(next_version(e.path()), 2);
    }

    #[test]
    fn yaml_of_flat_hparams() {
        let v = serde_json::json!({"lr": 0.01, "name": "mlp", "layers": [1, 2], "eps": 1e-8});
        assert_eq!(to_yaml(&v), "eps: 1.0e-08\nlayers:\n- 1\n- 2\nlr: 0.01\nname: mlp\n");
    }
}
