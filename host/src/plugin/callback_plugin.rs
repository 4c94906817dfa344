//! A WASM component as a [`Callback`]: called at the hooks it lists, with the trainer's
//! state and metrics as plain values; no files, no tensors.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use serde_json::Value;
use wasmtime::Store;

use crate::callbacks::{Callback, CallbackAction, HookInfo};
use crate::hooks::Hook;
use crate::plugin::bindings::callback;
use crate::plugin::failure::describe;
use crate::plugin::host::trainer::stage_out;
use crate::plugin::runtime::Runtime;
use crate::plugin::sandbox::{sandbox, PluginOptions, Sandboxed};
use crate::plugin::state::PluginState;

pub const CALLBACK_EXPORT: &str = "lt:plugin/callback@0.2.0";

pub struct WasmCallback {
    name: String,
    store: Store<PluginState>,
    guest: callback::Guest,
    hooks: HashSet<String>,
    deadline_ticks: u64,
    /// Set once a call trapped: a trapped instance is not entered again.
    poisoned: bool,
}

pub fn load_callback(runtime: &Arc<Runtime>, path: &Path, opts: &PluginOptions) -> Result<WasmCallback> {
    let Sandboxed { name, mut store, pre, deadline_ticks, .. } = sandbox(runtime, path, opts, &[])?;
    let idx = callback::GuestIndices::new(&pre)
        .map_err(|_| anyhow!("plugin `{name}`: exports no `{CALLBACK_EXPORT}`, so it is not a callback"))?;
    let instance = crate::plugin::sandbox::instantiate(&mut store, &pre, &name, deadline_ticks)?;
    let guest = idx.load(&mut store, &instance).map_err(|e| anyhow!("plugin `{name}`: {e}"))?;
    crate::plugin::sandbox::arm(&mut store, deadline_ticks);
    let hooks =
        guest.call_hooks(&mut store).map_err(|e| anyhow!("{}", describe(&name, "hooks", e)))?.into_iter().collect();
    Ok(WasmCallback { name, store, guest, hooks, deadline_ticks, poisoned: false })
}

impl Callback for WasmCallback {
    fn name(&self) -> &str {
        &self.name
    }

    fn state_key(&self) -> String {
        format!("plugin:{}", self.name)
    }

    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> Result<CallbackAction> {
        if !self.hooks.contains(hook.name()) {
            return Ok(CallbackAction::default());
        }
        let wit_info = callback::HookInfo {
            stage: stage_out(info.stage),
            batch_idx: info.batch_idx,
            current_epoch: info.current_epoch,
            global_step: info.global_step,
            metrics: info.callback_metrics.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            logged_metrics: info.logged_metrics.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            batches_that_stepped: info.batches_that_stepped,
            lrs: info.optim.map(crate::callbacks::lr_monitor::current_lrs).unwrap_or_default(),
            grad_norm: match hook {
                Hook::OnAfterBackward | Hook::OnBeforeOptimizerStep => info.optim.and_then(|o| o.grad_norm()),
                _ => None,
            },
        };
        crate::plugin::sandbox::arm(&mut self.store, self.deadline_ticks);
        if self.poisoned {
            anyhow::bail!("callback plugin `{}` already failed in an earlier hook", self.name);
        }
        let out = self.guest.call_on_hook(&mut self.store, hook.name(), &wit_info);
        self.poisoned |= out.is_err();
        let out = out.map_err(|e| anyhow!("{}", describe(&self.name, hook.name(), e)))?;
        let r = out.map_err(|m| anyhow!("callback plugin `{}` failed in `{}`: {m}", self.name, hook.name()))?;
        Ok(CallbackAction { stop: r.stop, logs: r.logs, ..CallbackAction::default() })
    }

    /// The plugin's state for a checkpoint, under a fresh deadline; a failure fails the save
    /// (a checkpoint silently missing it would resume differently).
    fn state(&mut self) -> Result<Option<Value>> {
        crate::plugin::sandbox::arm(&mut self.store, self.deadline_ticks);
        if self.poisoned {
            // Only reached when the run is being saved after a signal stopped this plugin.
            eprintln!("warning: callback plugin `{}` was stopped mid-hook; its state is not saved", self.name);
            return Ok(None);
        }
        let text = self.guest.call_save_state(&mut self.store);
        self.poisoned |= text.is_err();
        let text = text.map_err(|e| anyhow!("{}", describe(&self.name, "state_dict", e)))?;
        let Some(text) = text else { return Ok(None) };
        if text.len() > crate::checkpoint::MAX_STATE_BYTES {
            anyhow::bail!(
                "callback plugin `{}`: its state is {} MiB, over the {} MiB a callback state may take",
                self.name,
                text.len() >> 20,
                crate::checkpoint::MAX_STATE_BYTES >> 20
            );
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| anyhow!("callback plugin `{}`: its state (state_dict) is not JSON ({e})", self.name))
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let text = state.to_string();
        crate::plugin::sandbox::arm(&mut self.store, self.deadline_ticks);
        let out = self
            .guest
            .call_load_state(&mut self.store, &text)
            .map_err(|e| anyhow!("{}", describe(&self.name, "load_state_dict", e)))?;
        out.map_err(|m| anyhow!("callback plugin `{}` failed in `load_state_dict`: {m}", self.name))
    }
}
