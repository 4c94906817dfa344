//! A WASM component as a [`Module`] and/or [`DataModule`]: loads and checks the component,
//! instantiates it in a sandboxed store, and turns each hook into a guest call, lending the
//! run's [`RunContext`] to the store for the duration of the call.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use tch::{Device, Tensor};
use wasmtime::component::{Instance, Resource};
use wasmtime_wasi::FsPerms;

use crate::context::{RunContext, Stage};
use crate::error::PluginError;
use crate::hooks::Hook;
use crate::hparams::SavedHparams;
use crate::module::{AttrValue, Module, Optimization, OptimizerCall, PluginOptimizerState, SchedulerCall};
use crate::plugin::bindings::data_module;
use crate::plugin::bindings::file_callbacks;
use crate::plugin::bindings::lightning_module;
use crate::plugin::bindings::lr_schedulers;
use crate::plugin::bindings::plugin_optimizers;
use crate::plugin::convert;
use crate::plugin::host::trainer::stage_out;
use crate::plugin::instance::{enter, HasInstance, PluginInstance};
use crate::plugin::runtime::Runtime;
use crate::plugin::sandbox::{admit, Admitted, PluginOptions};

/// The most callbacks of its own a plugin may have.
const MAX_FILE_CALLBACKS: usize = 1024;

/// The WIT interfaces a plugin may export, as the host looks them up.
pub const MODULE_EXPORT: &str = "lt:plugin/lightning-module@0.3.0";
pub const DATAMODULE_EXPORT: &str = "lt:plugin/data-module@0.3.0";

pub(super) struct Inner {
    /// The store, the hook deadline, poisoning after a trap.
    pub(super) instance: PluginInstance,
    module: Option<lightning_module::Guest>,
    data: Option<data_module::Guest>,
    /// The schedulers the plugin runs (a Lightning file's), when it exports them.
    schedulers: Option<lr_schedulers::Guest>,
    /// The optimizers the plugin runs (a Lightning file's own), when it exports them.
    optimizers: Option<plugin_optimizers::Guest>,
    /// The file's own callbacks (a Lightning file's), when it exports them.
    callbacks: Option<file_callbacks::Guest>,
    /// The data directory this plugin was granted (its manifest may decline the run's);
    /// swapped into the lent context for each call.
    data_dir: Option<PathBuf>,
    /// The DataModule's `setup` arguments and restored state, for its worker instances.
    /// The DataModule's `setup` and `load_state` calls, in order, for its worker instances.
    pub(super) setup_log: Vec<SetupStep>,
}

/// A call that made the DataModule what it is, replayed in order by its DataLoader worker
/// instances (a forked torch worker holds the main process's object): usually one `setup`
/// (then `load_state` on a resume); after a learning-rate search, the set-up, its state put
/// back, and the fit's set-up again.
#[derive(Clone)]
pub(super) enum SetupStep {
    Setup {
        stage: Stage,
        hparams: String,
        /// The run's CPU generator state when `setup` was called: a worker's `setup` draws
        /// from a generator in this state, so it makes the plugin's random data.
        rng: Vec<u8>,
    },
    /// The state the DataModule was restored to (`load_state_dict`).
    LoadState(Vec<u8>),
}

impl HasInstance for Inner {
    fn instance(&mut self) -> &mut PluginInstance {
        &mut self.instance
    }
}

/// A loaded plugin; clones share one instance (a component may be model and data at once).
#[derive(Clone)]
pub struct WasmPlugin {
    inner: Rc<RefCell<Inner>>,
    name: String,
    sha256: String,
    /// Where more instances come from (DataLoader workers).
    origin: Option<(Arc<Runtime>, Arc<Admitted>)>,
}

/// Reads, compiles and instantiates a plugin component.
pub fn load(runtime: &Arc<Runtime>, path: &Path, opts: &PluginOptions) -> Result<WasmPlugin> {
    let mut dirs: Vec<(PathBuf, &str, FsPerms)> =
        opts.data_dir.iter().map(|d| (d.clone(), "/data", FsPerms::ReadOnly)).collect();
    if let Some(root) = &opts.output_root {
        // A plain name only: a file named `...wasm` must not make `/output` the root itself.
        let stem = path.file_stem().and_then(crate::run_dir::plain_name).unwrap_or("plugin");
        dirs.push((root.join(stem), "/output", FsPerms::ReadWrite));
    }
    let admitted = Arc::new(admit(runtime, path, opts, &dirs)?);
    instantiate(runtime, &admitted, 1)
}

/// A new instance of an admitted component, in a store of its own with `1/share` of the
/// plugin's limits.
pub(crate) fn instantiate(runtime: &Arc<Runtime>, admitted: &Arc<Admitted>, share: usize) -> Result<WasmPlugin> {
    let name = admitted.name.clone();
    let mut store = admitted.store(runtime, share)?;
    let pre = &admitted.pre;
    let module_idx = lightning_module::GuestIndices::new(pre).ok();
    let data_idx = data_module::GuestIndices::new(pre).ok();
    let sched_idx = lr_schedulers::GuestIndices::new(pre).ok();
    let optim_idx = plugin_optimizers::GuestIndices::new(pre).ok();
    let callbacks_idx = file_callbacks::GuestIndices::new(pre).ok();
    if module_idx.is_none() && data_idx.is_none() {
        bail!("plugin `{name}`: exports neither `{MODULE_EXPORT}` nor `{DATAMODULE_EXPORT}`; is it an lthost plugin built against lt:plugin@0.3.0?");
    }
    let instance: Instance = crate::plugin::sandbox::instantiate(&mut store, pre, &name, admitted.deadline_ticks)?;
    let failed = |e: wasmtime::Error| anyhow!("plugin `{name}`: {e}");
    let module = module_idx.map(|i| i.load(&mut store, &instance)).transpose().map_err(failed)?;
    let data = data_idx.map(|i| i.load(&mut store, &instance)).transpose().map_err(failed)?;
    let schedulers = sched_idx.map(|i| i.load(&mut store, &instance)).transpose().map_err(failed)?;
    let optimizers = optim_idx.map(|i| i.load(&mut store, &instance)).transpose().map_err(failed)?;
    let callbacks = callbacks_idx.map(|i| i.load(&mut store, &instance)).transpose().map_err(failed)?;
    let inner = Inner {
        instance: PluginInstance::new(name.clone(), store, admitted.deadline_ticks),
        module,
        data,
        schedulers,
        optimizers,
        callbacks,
        data_dir: admitted.data_dir.clone(),
        setup_log: Vec::new(),
    };
    Ok(WasmPlugin {
        inner: Rc::new(RefCell::new(inner)),
        name,
        sha256: admitted.sha256.clone(),
        origin: Some((Arc::clone(runtime), Arc::clone(admitted))),
    })
}

impl WasmPlugin {
    /// SHA-256 of the component's bytes (recorded in checkpoints).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The runtime and admitted component this instance came from.
    pub(super) fn origin(&self) -> Option<(Arc<Runtime>, Arc<Admitted>)> {
        self.origin.clone()
    }

    /// The DataModule's `setup` and `load_state` calls so far (none: not set up).
    pub(super) fn setup_log(&self) -> Option<Vec<SetupStep>> {
        let log = &self.inner.borrow().setup_log;
        (!log.is_empty()).then(|| log.clone())
    }

    pub(super) fn inner_mut(&self) -> std::cell::RefMut<'_, Inner> {
        self.inner.borrow_mut()
    }

    pub fn has_module(&self) -> bool {
        self.inner.borrow().module.is_some()
    }

    pub fn has_datamodule(&self) -> bool {
        self.inner.borrow().data.is_some()
    }

    /// Runs one hook: lends `ctx` to the store, calls, takes `ctx` back (also on failure).
    pub(super) fn call<T>(
        &self,
        ctx: &mut RunContext,
        hook: &str,
        creation_device: Device,
        f: impl FnOnce(&mut Inner) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        let mut inner = self.inner.borrow_mut();
        if inner.instance.poisoned() {
            return Err(inner.instance.refused(hook));
        }
        let mut lent = std::mem::take(ctx);
        lent.creation_device = creation_device;
        std::mem::swap(&mut lent.data_dir, &mut inner.data_dir);
        inner.instance.store.data_mut().ctx = lent;
        let result = enter(&mut *inner, hook, f);
        *ctx = std::mem::take(&mut inner.instance.store.data_mut().ctx);
        std::mem::swap(&mut ctx.data_dir, &mut inner.data_dir);
        result
    }

    /// A failure the plugin reported (a hook's error result), its text cut to 4 KiB as
    /// `trainer.fail`'s.
    pub(super) fn err(&self, hook: &str, op: Option<&str>, detail: String) -> anyhow::Error {
        anyhow::Error::new(PluginError {
            plugin: self.name.clone(),
            hook: hook.into(),
            op: op.map(Into::into),
            detail: capped(detail),
            backtrace: None,
        })
    }

    /// Moves batch tensors into the store as guest-owned handles.
    fn lend_batch(inner: &mut Inner, batch: &[Tensor]) -> wasmtime::Result<Vec<Resource<Tensor>>> {
        batch
            .iter()
            .map(|t| {
                inner
                    .instance
                    .store
                    .data_mut()
                    .handles()
                    .push(t.shallow_clone(), "batch")
                    .map_err(|e| wasmtime::format_err!("{e}"))
            })
            .collect()
    }

    pub(super) fn take_tensor(inner: &mut Inner, r: Resource<Tensor>) -> wasmtime::Result<Tensor> {
        inner.instance.store.data_mut().handles().take(r)
    }

    fn module_guest(inner: &Inner) -> wasmtime::Result<&lightning_module::Guest> {
        inner.module.as_ref().ok_or_else(|| wasmtime::format_err!("this plugin exports no `{MODULE_EXPORT}`"))
    }

    fn callbacks_guest(inner: &Inner) -> wasmtime::Result<file_callbacks::Guest> {
        inner
            .callbacks
            .clone()
            .ok_or_else(|| wasmtime::format_err!("this plugin exports no `lt:plugin/file-callbacks`"))
    }

    pub(super) fn data_guest(inner: &Inner) -> wasmtime::Result<&data_module::Guest> {
        inner.data.as_ref().ok_or_else(|| wasmtime::format_err!("this plugin exports no `{DATAMODULE_EXPORT}`"))
    }

    fn eval_step(&self, ctx: &mut RunContext, hook: &str, batch: &[Tensor], idx: u64) -> Result<()> {
        let dev = ctx.device;
        let hook_name = hook.to_string();
        let out = self.call(ctx, hook, dev, |inner| {
            let handles = Self::lend_batch(inner, batch)?;
            let g = Self::module_guest(inner)?.clone();
            match hook_name.as_str() {
                "validation_step" => g.call_validation_step(&mut inner.instance.store, &handles, idx),
                _ => g.call_test_step(&mut inner.instance.store, &handles, idx),
            }
        })?;
        // The step's own failure: the plugin stays usable.
        out.map_err(|m| self.err(hook, None, m))
    }
}

impl Module for WasmPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn configure(&mut self, ctx: &mut RunContext, hparams: &Value) -> Result<SavedHparams> {
        let text = hparams.to_string();
        let dev = ctx.device;
        let out = self.call(ctx, "configure", dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_configure(&mut inner.instance.store, &text)
        })?;
        let saved = out.map_err(|msg| self.err("configure", None, format!("building the module failed: {msg}")))?;
        SavedHparams::from_json(&saved.hparams, saved.log)
            .map_err(|e| self.err("configure", None, format!("returned {e}")))
    }

    fn configure_optimizers(&mut self, ctx: &mut RunContext) -> Result<Optimization> {
        let dev = ctx.device;
        let o = self.call(ctx, "configure_optimizers", dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_configure_optimizers(&mut inner.instance.store)
        })?;
        convert::optimization(&o).map_err(|m| self.err("configure_optimizers", None, m))
    }

    fn training_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], idx: u64) -> Result<Option<Tensor>> {
        let dev = ctx.device;
        let out = self.call(ctx, "training_step", dev, |inner| {
            let handles = Self::lend_batch(inner, batch)?;
            let g = Self::module_guest(inner)?.clone();
            match g.call_training_step(&mut inner.instance.store, &handles, idx)? {
                Ok(Some(loss)) => Ok(Ok(Some(Self::take_tensor(inner, loss)?))),
                Ok(None) => Ok(Ok(None)),
                Err(m) => Ok(Err(m)),
            }
        })?;
        // The step's own failure (an exception it raised): the plugin stays usable.
        out.map_err(|m| self.err("training_step", None, m))
    }

    fn validation_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], idx: u64) -> Result<()> {
        self.eval_step(ctx, "validation_step", batch, idx)
    }

    fn test_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], idx: u64) -> Result<()> {
        self.eval_step(ctx, "test_step", batch, idx)
    }

    fn implemented_hooks(&mut self, ctx: &mut RunContext) -> Result<Vec<Hook>> {
        self.module_hooks(ctx)
    }

    fn has_attr(&mut self, ctx: &mut RunContext, name: &str) -> Result<bool> {
        let dev = ctx.device;
        Ok(self.call(ctx, "lightning_hasattr", dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_has_attr(&mut inner.instance.store, name)
        })?)
    }

    fn set_attr(&mut self, ctx: &mut RunContext, name: &str, value: AttrValue) -> Result<()> {
        let dev = ctx.device;
        let out = self.call(ctx, "lightning_setattr", dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_set_attr(&mut inner.instance.store, name, crate::plugin::convert::attr_to_wit(value))
        })?;
        out.map_err(|m| self.err("lightning_setattr", None, m))
    }

    fn get_attr(&mut self, ctx: &mut RunContext, name: &str) -> Result<Option<AttrValue>> {
        let dev = ctx.device;
        let out = self.call(ctx, "lightning_getattr", dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_get_attr(&mut inner.instance.store, name)
        })?;
        Ok(out.map(crate::plugin::convert::attr_from_wit))
    }

    fn save_state(&mut self, ctx: &mut RunContext) -> Result<Option<Vec<u8>>> {
        let dev = ctx.device;
        Ok(self.call(ctx, "on_save_checkpoint", dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_save_state(&mut inner.instance.store)
        })?)
    }

    fn load_state(&mut self, ctx: &mut RunContext, state: &[u8]) -> Result<()> {
        let dev = ctx.device;
        let out = self.call(ctx, "on_load_checkpoint", dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_load_state(&mut inner.instance.store, state)
        })?;
        out.map_err(|m| self.err("on_load_checkpoint", None, m))
    }

    fn hook(&mut self, ctx: &mut RunContext, hook: Hook, batch_idx: Option<u64>) -> Result<i32> {
        self.module_hook(ctx, hook, batch_idx)
    }

    fn plugin_optimizer(
        &mut self,
        ctx: &mut RunContext,
        index: usize,
        call: OptimizerCall,
    ) -> Result<Option<PluginOptimizerState>> {
        let dev = ctx.device;
        let i = u32::try_from(index).map_err(|_| self.err("optimizer", None, format!("optimizer {index}")))?;
        let what = match call {
            OptimizerCall::Step => "optimizer.step",
            OptimizerCall::State => "optimizer.state_dict",
            OptimizerCall::Load(..) => "optimizer.load_state_dict",
        };
        let out = self.call(ctx, what, dev, |inner| {
            let g = inner.optimizers.clone().ok_or_else(|| {
                wasmtime::format_err!(
                    "the plugin asked for an optimizer it runs itself, but exports no `lt:plugin/plugin-optimizers`"
                )
            })?;
            Ok(match call {
                OptimizerCall::Step => g.call_step(&mut inner.instance.store, i)?.map(|_| None),
                OptimizerCall::State => match g.call_state(&mut inner.instance.store, i)? {
                    Ok((named, rest)) => {
                        let mut tensors = Vec::with_capacity(named.len());
                        for (n, r) in named {
                            tensors.push((n, Self::take_tensor(inner, r)?));
                        }
                        Ok(Some((tensors, rest)))
                    }
                    Err(e) => Err(e),
                },
                OptimizerCall::Load(tensors, rest) => {
                    let mut lent = Vec::with_capacity(tensors.len());
                    for (n, t) in tensors {
                        let r = inner
                            .instance
                            .store
                            .data_mut()
                            .handles()
                            .push(t.shallow_clone(), "optimizer state")
                            .map_err(|e| wasmtime::format_err!("{e}"))?;
                        lent.push((n.clone(), r));
                    }
                    g.call_load_state(&mut inner.instance.store, i, &lent, rest)?.map(|_| None)
                }
            })
        })?;
        out.map_err(|m| self.err(what, None, m))
    }

    fn plugin_scheduler(&mut self, ctx: &mut RunContext, index: usize, call: SchedulerCall) -> Result<Option<String>> {
        let dev = ctx.device;
        let i = u32::try_from(index).map_err(|_| self.err("lr_scheduler", None, format!("scheduler {index}")))?;
        let what = match call {
            SchedulerCall::Start | SchedulerCall::Step(_) => "lr_scheduler.step",
            SchedulerCall::State => "lr_scheduler.state_dict",
            SchedulerCall::Load(_) => "lr_scheduler.load_state_dict",
        };
        let out = self.call(ctx, what, dev, |inner| {
            let g = inner.schedulers.clone().ok_or_else(|| {
                wasmtime::format_err!(
                    "the plugin asked for a scheduler it runs itself, but exports no `lt:plugin/lr-schedulers`"
                )
            })?;
            let s = &mut inner.instance.store;
            Ok(match call {
                SchedulerCall::Start => g.call_start(s, i)?.map(Some),
                SchedulerCall::Step(metric) => g.call_step(s, i, metric)?.map(Some),
                SchedulerCall::State => g.call_state(s, i)?.map(Some),
                SchedulerCall::Load(state) => g.call_load_state(s, i, state)?.map(|_| None),
            })
        })?;
        out.map_err(|m| self.err(what, None, m))
    }

    fn file_callbacks(&mut self, ctx: &mut RunContext) -> Result<Vec<crate::module::FileCallback>> {
        if self.inner.borrow().callbacks.is_none() {
            return Ok(Vec::new());
        }
        let dev = ctx.device;
        let out = self.call(ctx, "callbacks", dev, |inner| {
            let g = Self::callbacks_guest(inner)?;
            g.call_callbacks(&mut inner.instance.store)
        })?;
        let list = out.map_err(|m| self.err("callbacks", None, m))?;
        if list.len() > MAX_FILE_CALLBACKS {
            let n = list.len();
            return Err(self.err(
                "callbacks",
                None,
                format!("{n} callbacks, over the {MAX_FILE_CALLBACKS} a plugin may have"),
            ));
        }
        let mut cbs = Vec::with_capacity(list.len());
        for c in list {
            if c.state_key.len() > crate::context::MAX_METRIC_NAME {
                let n = c.state_key.len();
                let most = crate::context::MAX_METRIC_NAME;
                return Err(self.err("callbacks", None, format!("a callback's state key is {n} bytes, over {most}")));
            }
            let mut hooks = Vec::with_capacity(Hook::ALL.len());
            for name in &c.hooks {
                // Lightning's callback hooks the loops call; one they do not (or not on a file's
                // callback: `on_exception`, whose failure must not keep it from the others) is
                // refused here, not left silently uncalled.
                let hook = Hook::ALL
                    .iter()
                    .copied()
                    .find(|h| h.name() == name && h.owner() != crate::hooks::Owner::Module && *h != Hook::OnException);
                match hook {
                    Some(h) if hooks.contains(&h) => {}
                    Some(h) => hooks.push(h),
                    None => {
                        return Err(self.err(
                            "callbacks",
                            None,
                            format!(
                                "callback `{}` overrides `{name}`, which lthost does not call on a callback yet",
                                c.state_key
                            ),
                        ))
                    }
                }
            }
            cbs.push(crate::module::FileCallback { state_key: c.state_key, hooks });
        }
        Ok(cbs)
    }

    fn file_callback_hook(&mut self, ctx: &mut RunContext, hook: Hook, batch_idx: Option<u64>) -> Result<()> {
        let dev = ctx.device;
        let stage = stage_out(ctx.stage);
        let out = self.call(ctx, hook.name(), dev, |inner| {
            let g = Self::callbacks_guest(inner)?;
            g.call_on_hook(&mut inner.instance.store, hook.name(), stage, batch_idx)
        })?;
        out.map_err(|m| self.err(hook.name(), None, m))
    }

    fn file_callback_states(&mut self, ctx: &mut RunContext) -> Result<Vec<(String, String)>> {
        let dev = ctx.device;
        let out = self.call(ctx, "state_dict", dev, |inner| {
            let g = Self::callbacks_guest(inner)?;
            g.call_save_state(&mut inner.instance.store)
        })?;
        out.map_err(|m| self.err("state_dict", None, m))
    }

    fn load_file_callback_state(&mut self, ctx: &mut RunContext, state_key: &str, state: &str) -> Result<()> {
        let dev = ctx.device;
        let out = self.call(ctx, "load_state_dict", dev, |inner| {
            let g = Self::callbacks_guest(inner)?;
            g.call_load_state(&mut inner.instance.store, state_key, state)
        })?;
        out.map_err(|m| self.err("load_state_dict", None, m))
    }

    fn predict_step(&mut self, ctx: &mut RunContext, batch: &[Tensor], idx: u64) -> Result<Tensor> {
        let dev = ctx.device;
        let out = self.call(ctx, "predict_step", dev, |inner| {
            let handles = Self::lend_batch(inner, batch)?;
            let g = Self::module_guest(inner)?.clone();
            match g.call_predict_step(&mut inner.instance.store, &handles, idx)? {
                Ok(t) => Ok(Ok(Self::take_tensor(inner, t)?)),
                Err(m) => Ok(Err(m)),
            }
        })?;
        // The step's own failure: the plugin stays usable.
        out.map_err(|m| self.err("predict_step", None, m))
    }
}

impl WasmPlugin {
    fn module_hooks(&mut self, ctx: &mut RunContext) -> Result<Vec<Hook>> {
        let dev = ctx.device;
        let list = self.call(ctx, "implemented_hooks", dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_implemented_hooks(&mut inner.instance.store)
        })?;
        Ok(Hook::ALL.iter().copied().filter(|h| convert::hook_out(*h).is_some_and(|w| list.contains(&w))).collect())
    }

    fn module_hook(&mut self, ctx: &mut RunContext, hook: Hook, batch_idx: Option<u64>) -> Result<i32> {
        let Some(w) = convert::hook_out(hook) else { return Ok(0) };
        let dev = ctx.device;
        let stage = stage_out(ctx.stage);
        Ok(self.call(ctx, hook.name(), dev, |inner| {
            let g = Self::module_guest(inner)?.clone();
            g.call_on_hook(&mut inner.instance.store, w, stage, batch_idx)
        })?)
    }
}

/// `text` cut to at most 4096 bytes, at a character boundary (what a plugin reports is
/// shown, not kept whole).
pub(crate) fn capped(mut text: String) -> String {
    if text.len() > 4096 {
        let mut end = 4096;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reported_failure_is_cut_at_a_character_boundary() {
        assert_eq!(super::capped("short".into()), "short");
        // 4095 ASCII bytes, then a 3-byte character across the 4096-byte cut: it goes whole.
        let long = format!("{}€{}", "a".repeat(4095), "b".repeat(100));
        let cut = super::capped(long);
        assert_eq!(cut.len(), 4095);
        assert!(cut.chars().all(|c| c == 'a'));
    }
}
