//! One instantiated plugin: its store, the hook deadline, and poisoning after a trap. Every
//! adapter (module and DataModule, callback, logger) enters the guest through
//! [`enter`], so every call gets the same treatment: refused once an earlier call trapped,
//! run under a fresh deadline with its CPU allocations charged to the plugin's budget and
//! host panics caught, the trainer's grad mode and the store's deadline put back at its end,
//! and the instance poisoned when the call trapped or panicked.

use std::sync::Arc;

use wasmtime::Store;

use crate::error::PluginError;
use crate::plugin::failure::describe;
use crate::plugin::state::PluginState;

pub struct PluginInstance {
    pub name: String,
    pub store: Store<PluginState>,
    deadline_ticks: u64,
    /// Set once a call trapped or panicked: a trapped instance is not entered again.
    poisoned: bool,
}

impl PluginInstance {
    pub fn new(name: String, store: Store<PluginState>, deadline_ticks: u64) -> Self {
        PluginInstance { name, store, deadline_ticks, poisoned: false }
    }

    /// An earlier call trapped (or was stopped mid-hook by a signal).
    pub fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// The error for a call refused because an earlier one failed.
    pub fn refused(&self, hook: &str) -> PluginError {
        PluginError {
            plugin: self.name.clone(),
            hook: hook.into(),
            op: None,
            detail: "the plugin already failed in an earlier hook".into(),
            backtrace: None,
        }
    }
}

/// What owns a [`PluginInstance`] beside the guest's exports (an adapter's state).
pub trait HasInstance {
    fn instance(&mut self) -> &mut PluginInstance;
}

impl HasInstance for PluginInstance {
    fn instance(&mut self) -> &mut PluginInstance {
        self
    }
}

/// Runs one call of hook `hook` into the guest (`f` reaches the store through `owner`).
pub fn enter<O: HasInstance, T>(
    owner: &mut O,
    hook: &str,
    f: impl FnOnce(&mut O) -> wasmtime::Result<T>,
) -> Result<T, PluginError> {
    let inst = owner.instance();
    if inst.poisoned {
        return Err(inst.refused(hook));
    }
    crate::plugin::sandbox::arm(&mut inst.store, inst.deadline_ticks);
    // Every CPU allocation made during the call is charged to the plugin.
    let memory = Arc::clone(&inst.store.data().budget.memory);
    let charging = memory.charge();
    // The plugin may switch grad mode (`set-grad-enabled`); the call's end puts back the
    // trainer's.
    let grad_mode = crate::engine::torch_ext::grad_enabled();
    // ... and torch.autocast scopes it entered (and the Rust SDK's never left).
    let autocast = crate::engine::autocast::AutocastState::capture();
    let result = crate::plugin::panic_guard::guarded(|| f(owner));
    let inst = owner.instance();
    while inst.store.data_mut().inference_scopes.0.pop().is_some() {}
    crate::engine::torch_ext::set_grad_enabled(grad_mode);
    autocast.restore();
    drop(charging);
    inst.store.data_mut().deadline = None;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            inst.poisoned = true;
            Err(describe(&inst.name, hook, e))
        }
        Err(caught) => {
            inst.poisoned = true;
            Err(PluginError {
                plugin: inst.name.clone(),
                hook: hook.into(),
                op: caught.op,
                detail: caught.message,
                backtrace: None,
            })
        }
    }
}
