//! A WASM component as a [`Logger`]: it gets hyper-parameters and metrics as plain values and
//! may write only in its own directory (`/logs` in the guest; `<log dir>/plugins/<plugin
//! name>` on the host: a namespace of their own, so that no plugin's file name can make its
//! directory one of the host's, such as `checkpoints`). Symlinks it leaves are removed when
//! the run is done with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
use serde_json::Value;
use wasmtime::Store;
use wasmtime_wasi::FsPerms;

use crate::loggers::{CheckpointSaved, Logger, Version};
use crate::plugin::bindings::logger;
use crate::plugin::instance::{enter, PluginInstance};
use crate::plugin::runtime::Runtime;
use crate::plugin::sandbox::{sandbox, PluginOptions, Sandboxed};
use crate::plugin::state::PluginState;

pub const LOGGER_EXPORT: &str = "lt:plugin/logger@0.3.0";

pub struct WasmLogger {
    instance: PluginInstance,
    /// Its own directory (`/logs`).
    dir: PathBuf,
    /// The run's version directory it lives in: what the run sees as its log dir (never the
    /// plugin's own, or a run logging only to a plugin would keep its checkpoints there).
    version_dir: PathBuf,
    version: Version,
    guest: logger::Guest,
}

/// The directory logger plugins' own directories go in, inside the log directory.
pub const PLUGIN_LOG_DIRS: &str = "plugins";

/// Loads a logger component writing into `<log_dir>/plugins/<name>`.
pub fn load_logger(
    runtime: &Arc<Runtime>,
    path: &Path,
    opts: &PluginOptions,
    log_dir: &Path,
    version: &Version,
) -> Result<WasmLogger> {
    let stem = path.file_stem().and_then(crate::run_dir::plain_name).unwrap_or("logger").to_string();
    let dir = log_dir.join(PLUGIN_LOG_DIRS).join(&stem);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let grant = [(dir.clone(), "/logs", FsPerms::ReadWrite)];
    let Sandboxed { name, mut store, pre, deadline_ticks, .. } = sandbox(runtime, path, opts, &grant)?;
    let idx = logger::GuestIndices::new(&pre)
        .map_err(|_| anyhow!("plugin `{name}`: exports no `{LOGGER_EXPORT}`, so it is not a logger"))?;
    let instance = crate::plugin::sandbox::instantiate(&mut store, &pre, &name, deadline_ticks)?;
    let guest = idx.load(&mut store, &instance).map_err(|e| anyhow!("plugin `{name}`: {e}"))?;
    Ok(WasmLogger {
        instance: PluginInstance::new(name, store, deadline_ticks),
        dir,
        version_dir: log_dir.to_path_buf(),
        version: version.clone(),
        guest,
    })
}

impl WasmLogger {
    fn call(
        &mut self,
        hook: &str,
        f: impl FnOnce(&logger::Guest, &mut Store<PluginState>) -> wasmtime::Result<Result<(), String>>,
    ) -> Result<()> {
        let name = &self.instance.name;
        if self.instance.poisoned() {
            if hook == "finalize" || hook == "after_save_checkpoint" {
                // The run is ending (or saving) after a signal stopped this plugin mid-call:
                // the saves go on without it.
                eprintln!("warning: logger plugin `{name}` was stopped mid-call; it is not told `{hook}`");
                return Ok(());
            }
            anyhow::bail!("logger plugin `{name}` already failed in an earlier call");
        }
        let guest = &self.guest;
        let out = enter(&mut self.instance, hook, |i| f(guest, &mut i.store))?;
        out.map_err(|msg| anyhow!("logger plugin `{}` failed in `{hook}`: {msg}", self.instance.name))
    }
}

impl Logger for WasmLogger {
    fn name(&self) -> &str {
        &self.instance.name
    }
    fn version(&self) -> Version {
        self.version.clone()
    }
    fn log_dir(&self) -> &Path {
        &self.version_dir
    }
    fn log_hyperparams(&mut self, hparams: &Value) -> Result<()> {
        let text = hparams.to_string();
        self.call("log_hyperparams", |g, s| g.call_log_hyperparams(s, &text))
    }
    fn log_metrics(&mut self, metrics: &BTreeMap<String, f64>, step: u64) -> Result<()> {
        let list: Vec<(String, f64)> = metrics.iter().map(|(k, v)| (k.clone(), *v)).collect();
        self.call("log_metrics", |g, s| g.call_log_metrics(s, step, &list))
    }
    fn save(&mut self) -> Result<()> {
        self.call("save", |g, s| g.call_save(s))
    }
    fn finalize(&mut self, status: &str) -> Result<()> {
        self.call("finalize", |g, s| g.call_finalize(s, status))
    }
    fn after_save_checkpoint(&mut self, saved: &CheckpointSaved) -> Result<()> {
        let c = logger::CheckpointCallback {
            saved: saved.saved.clone(),
            monitor: saved.monitor.clone(),
            save_top_k: saved.save_top_k,
            best_model_path: saved.best_model_path.clone(),
            best_model_score: saved.best_model_score,
            last_model_path: saved.last_model_path.clone(),
            best_k_models: saved.best_k_models.clone(),
        };
        self.call("after_save_checkpoint", |g, s| g.call_after_save_checkpoint(s, &c))
    }
}

/// When the run is done with the logger (finalized or failed), nothing it linked stays.
impl Drop for WasmLogger {
    fn drop(&mut self) {
        if let Ok(d) = cap_std::fs::Dir::open_ambient_dir(&self.dir, cap_std::ambient_authority()) {
            remove_symlinks(&self.instance.name, &d, &self.dir, 0);
        }
    }
}

/// Removes every symlink a plugin left under its directory (none is followed), warning.
fn remove_symlinks(plugin: &str, dir: &cap_std::fs::Dir, shown: &Path, depth: usize) {
    let Ok(entries) = dir.entries() else { return };
    for e in entries.flatten() {
        let (name, Ok(ty)) = (e.file_name(), e.file_type()) else { continue };
        if ty.is_symlink() {
            eprintln!("warning: logger plugin `{plugin}` left a symlink {}; removed", shown.join(&name).display());
            let _ = dir.remove_file(&name);
        } else if ty.is_dir() && depth < 32 {
            if let Ok(sub) = dir.open_dir(&name) {
                remove_symlinks(plugin, &sub, &shown.join(&name), depth + 1);
            }
        }
    }
}
