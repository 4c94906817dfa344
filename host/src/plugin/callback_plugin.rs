//! A WASM component as a [`Callback`]: called at the hooks it lists, with the trainer's
//! state and metrics as plain values; no files, no tensors.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use serde_json::Value;

use crate::callbacks::{Callback, CallbackAction, HookInfo};
use crate::hooks::Hook;
use crate::plugin::bindings::callback;
use crate::plugin::host::trainer::stage_out;
use crate::plugin::instance::{enter, PluginInstance};
use crate::plugin::runtime::Runtime;
use crate::plugin::sandbox::{sandbox, PluginOptions, Sandboxed};

pub const CALLBACK_EXPORT: &str = "lt:plugin/callback@0.3.0";

pub struct WasmCallback {
    instance: PluginInstance,
    guest: callback::Guest,
    hooks: HashSet<String>,
}

pub fn load_callback(runtime: &Arc<Runtime>, path: &Path, opts: &PluginOptions) -> Result<WasmCallback> {
    let Sandboxed { name, mut store, pre, deadline_ticks, .. } = sandbox(runtime, path, opts, &[])?;
    let idx = callback::GuestIndices::new(&pre)
        .map_err(|_| anyhow!("plugin `{name}`: exports no `{CALLBACK_EXPORT}`, so it is not a callback"))?;
    let instance = crate::plugin::sandbox::instantiate(&mut store, &pre, &name, deadline_ticks)?;
    let guest = idx.load(&mut store, &instance).map_err(|e| anyhow!("plugin `{name}`: {e}"))?;
    let mut instance = PluginInstance::new(name, store, deadline_ticks);
    let hooks = enter(&mut instance, "hooks", |i| guest.call_hooks(&mut i.store))?.into_iter().collect();
    Ok(WasmCallback { instance, guest, hooks })
}

impl Callback for WasmCallback {
    fn name(&self) -> &str {
        &self.instance.name
    }

    fn state_key(&self) -> String {
        format!("plugin:{}", self.instance.name)
    }

    fn on_hook(&mut self, hook: Hook, info: &HookInfo<'_>) -> Result<CallbackAction> {
        if !self.hooks.contains(hook.name()) {
            return Ok(CallbackAction::default());
        }
        let wit_info = callback::HookInfo {
            stage: stage_out(info.stage),
            batch_idx: info.batch_idx,
            dataloader_idx: info.dataloader_idx,
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
        let name = &self.instance.name;
        if self.instance.poisoned() {
            anyhow::bail!("callback plugin `{name}` already failed in an earlier hook");
        }
        let guest = &self.guest;
        let out = enter(&mut self.instance, hook.name(), |i| guest.call_on_hook(&mut i.store, hook.name(), &wit_info))?;
        let name = &self.instance.name;
        let r = out.map_err(|m| anyhow!("callback plugin `{name}` failed in `{}`: {m}", hook.name()))?;
        Ok(CallbackAction { stop: r.stop, logs: r.logs, ..CallbackAction::default() })
    }

    /// The plugin's state for a checkpoint, under a fresh deadline; a failure fails the save
    /// (a checkpoint silently missing it would resume differently).
    fn state(&mut self) -> Result<Option<Value>> {
        if self.instance.poisoned() {
            // Only reached when the run is being saved after a signal stopped this plugin.
            eprintln!("warning: callback plugin `{}` was stopped mid-hook; its state is not saved", self.instance.name);
            return Ok(None);
        }
        let guest = &self.guest;
        let text = enter(&mut self.instance, "state_dict", |i| guest.call_save_state(&mut i.store))?;
        let Some(text) = text else { return Ok(None) };
        let name = &self.instance.name;
        if text.len() > crate::checkpoint::MAX_STATE_BYTES {
            anyhow::bail!(
                "callback plugin `{name}`: its state is {} MiB, over the {} MiB a callback state may take",
                text.len() >> 20,
                crate::checkpoint::MAX_STATE_BYTES >> 20
            );
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| anyhow!("callback plugin `{name}`: its state (state_dict) is not JSON ({e})"))
    }

    fn load_state(&mut self, state: &Value) -> Result<()> {
        let text = state.to_string();
        let guest = &self.guest;
        let out = enter(&mut self.instance, "load_state_dict", |i| guest.call_load_state(&mut i.store, &text))?;
        out.map_err(|m| anyhow!("callback plugin `{}` failed in `load_state_dict`: {m}", self.instance.name))
    }
}
