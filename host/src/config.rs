//! Run configuration: a TOML file (`--config run.toml`) with `[trainer]`, `[plugin]` and
//! `[hparams]` tables, overridden by command-line flags. Unknown keys are errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connectors::accelerator::Accelerator;
use crate::plugin::PluginOptions;

/// Lightning's Trainer arguments that lthost supports so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    /// Stop after this many epochs. Unset with `max_steps = -1`: 1000, as in Lightning.
    pub max_epochs: Option<u64>,
    /// Stop after this many optimizer steps (-1: no limit).
    pub max_steps: i64,
    /// `auto`, `cpu` or `cuda`.
    pub accelerator: String,
    /// Seed for libtorch's generator; unset: a random seed, printed.
    pub seed: Option<u64>,
    /// libtorch intra-op threads; unset: 1 on up to 2 cores, else half the cores (at most 8).
    pub threads: Option<usize>,
    pub log_every_n_steps: u64,
    pub check_val_every_n_epoch: u64,
    /// Validation batches run before training (-1: all, 0: none).
    pub num_sanity_val_steps: i64,
    pub enable_progress_bar: bool,
    pub enable_model_summary: bool,
    /// Logs go to `<default_root_dir>/lightning_logs/version_N`.
    pub default_root_dir: PathBuf,
    /// Write the CSV logs.
    pub logger: bool,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            max_epochs: None,
            max_steps: -1,
            accelerator: "auto".into(),
            seed: None,
            threads: None,
            log_every_n_steps: 50,
            check_val_every_n_epoch: 1,
            num_sanity_val_steps: 2,
            enable_progress_bar: true,
            enable_model_summary: true,
            default_root_dir: PathBuf::from("."),
            logger: true,
        }
    }
}

impl TrainerConfig {
    pub fn effective_max_epochs(&self) -> Option<u64> {
        match (self.max_epochs, self.max_steps) {
            (Some(m), _) => Some(m),
            (None, -1) => Some(1000),
            (None, _) => None,
        }
    }

    pub fn validate(&self) -> Result<Accelerator> {
        if self.log_every_n_steps == 0 {
            bail!("trainer.log_every_n_steps must be at least 1");
        }
        if self.check_val_every_n_epoch == 0 {
            bail!("trainer.check_val_every_n_epoch must be at least 1");
        }
        if self.max_steps < -1 {
            bail!("trainer.max_steps must be -1 (no limit) or a step count, got {}", self.max_steps);
        }
        if self.threads == Some(0) {
            bail!("trainer.threads must be at least 1");
        }
        self.accelerator.parse()
    }
}

/// Sandbox grants and limits for the plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// Directory the plugin may read (`/data` in the guest, and `tensor.load`).
    pub data_dir: Option<PathBuf>,
    pub memory_limit_mb: u64,
    pub hook_timeout_s: f64,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig { data_dir: None, memory_limit_mb: 2048, hook_timeout_s: 600.0 }
    }
}

impl PluginConfig {
    pub fn options(&self) -> Result<PluginOptions> {
        if !(self.hook_timeout_s.is_finite() && self.hook_timeout_s > 0.0) {
            bail!("plugin.hook_timeout_s must be a positive number of seconds");
        }
        if self.memory_limit_mb == 0 {
            bail!("plugin.memory_limit_mb must be positive");
        }
        if let Some(d) = &self.data_dir {
            if !d.is_dir() {
                bail!("plugin.data_dir `{}` is not a directory", d.display());
            }
        }
        Ok(PluginOptions {
            data_dir: self.data_dir.clone(),
            memory_limit_bytes: (self.memory_limit_mb as usize).saturating_mul(1 << 20),
            hook_timeout: Duration::from_secs_f64(self.hook_timeout_s),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub trainer: TrainerConfig,
    pub plugin: PluginConfig,
    /// Passed to the plugin's `configure` as a JSON object.
    pub hparams: serde_json::Map<String, Value>,
}

impl RunConfig {
    /// Reads a TOML run file; relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let mut cfg: RunConfig = toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {}", path.display(), e.to_string().trim()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(d) = &cfg.plugin.data_dir {
            if d.is_relative() {
                cfg.plugin.data_dir = Some(base.join(d));
            }
        }
        Ok(cfg)
    }

    /// Merges `--hparams` (a JSON object) over the file's `[hparams]`.
    pub fn merge_hparams_json(&mut self, text: &str) -> Result<()> {
        let v: Value = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("hyper-parameters are not valid JSON: {e} (from --hparams {text:?})"))?;
        let Value::Object(map) = v else { bail!("hyper-parameters must be a JSON object, got {text:?}") };
        self.hparams.extend(map);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn hparams_must_be_a_json_object() {
        let mut c = RunConfig::default();
        assert!(c.merge_hparams_json("{\"a\": 1}").is_ok());
        assert!(c.merge_hparams_json("{a: 1}").unwrap_err().to_string().contains("not valid JSON"));
        assert!(c.merge_hparams_json("[1]").is_err());
    }

    #[test]
    fn max_epochs_defaults_like_lightning() {
        let mut t = TrainerConfig::default();
        assert_eq!(t.effective_max_epochs(), Some(1000));
        t.max_steps = 10;
        assert_eq!(t.effective_max_epochs(), None);
    }
}
