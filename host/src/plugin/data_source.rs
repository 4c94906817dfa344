//! A plugin's DataModule as the loops see it: datasets the host batches, and streaming
//! sources — its own instance making batches between steps, or worker instances of the same
//! admitted component, each in a store of its own (sharing the plugin's limits) on its
//! worker's thread, `setup` and restored as the plugin was, with a generator of its own (in
//! the state the plugin's `setup` drew from, so a worker makes the same random data as a
//! forked torch worker holds; then base_seed + id for each pass, as torch seeds its
//! DataLoader workers) — and map-style datasets' items, fetched by the plugin's instance.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use serde_json::Value;
use tch::{Device, Tensor};
use wasmtime::component::Resource;

use crate::context::{RunContext, Stage};
use crate::engine::torch_ext::{self, Generator};
use crate::hparams::SavedHparams;
use crate::module::{
    BatchSource, DataModule, DatasetSpec, ItemFetcher, ItemSpec, Module, Split, StreamSpec, WorkerFactory, WorkerInfo,
};
use crate::plugin::adapter::{instantiate, Inner, SetupStep, WasmPlugin};
use crate::plugin::bindings::data_module::{
    Split as WitSplit, StreamSource as WitStreamSource, WorkerInfo as WitWorkerInfo,
};
use crate::plugin::convert;
use crate::plugin::host::trainer::stage_out;
use crate::plugin::runtime::Runtime;
use crate::plugin::sandbox::Admitted;

impl WasmPlugin {
    /// DataLoader `index` of the split's stream, if the plugin declares one.
    pub(super) fn stream_spec(&mut self, ctx: &mut RunContext, split: Split, index: u32) -> Result<Option<StreamSpec>> {
        let Some(s) = self.declared_stream(ctx, split, index)? else { return Ok(None) };
        let workers: Option<Arc<dyn WorkerFactory>> = match (s.num_workers, self.origin(), self.setup_log()) {
            (0, _, _) => None,
            (n, Some((runtime, admitted)), Some(setup)) => {
                Some(Arc::new(PluginWorkers { runtime, admitted, setup, split, index, share: n as usize }))
            }
            _ => None,
        };
        let main =
            Box::new(PluginStream { plugin: self.clone(), split, index, worker: None, ctx: RunContext::default() });
        Ok(Some(StreamSpec { num_batches: s.num_batches, num_workers: s.num_workers, main, workers }))
    }

    /// The guest's `streaming(split, index)`: what it declares.
    fn declared_stream(&mut self, ctx: &mut RunContext, split: Split, index: u32) -> Result<Option<WitStreamSource>> {
        let hook = format!("{}_stream", loader_name(split, index));
        Ok(self.call(ctx, &hook, Device::Cpu, |inner| {
            let g = Self::data_guest(inner)?.clone();
            g.call_streaming(&mut inner.instance.store, wit_split(split), index)
        })?)
    }
}

/// One instance's batches.
struct PluginStream {
    plugin: WasmPlugin,
    split: Split,
    /// Which of the split's DataLoaders.
    index: u32,
    /// A worker instance's id (its random ops draw from its own generator).
    worker: Option<u32>,
    /// What the instance's calls are lent (on the CPU; the loop moves batches).
    ctx: RunContext,
}

impl PluginStream {
    fn hook(&self, what: &str) -> String {
        match self.worker {
            Some(i) => format!("{}_stream.{what} (worker {i})", loader_name(self.split, self.index)),
            None => format!("{}_stream.{what}", loader_name(self.split, self.index)),
        }
    }
}

impl BatchSource for PluginStream {
    fn start_pass(&mut self, w: WorkerInfo) -> Result<()> {
        let hook = self.hook("start_pass");
        let generator = if self.worker.is_some() {
            Some(Generator::seeded(w.seed).map_err(|e| anyhow!("{hook}: {}", e.detail))?)
        } else {
            None
        };
        let split = wit_split(self.split);
        let info = WitWorkerInfo { id: w.id, num_workers: w.num_workers, seed: w.seed, epoch: w.epoch };
        let out = self.plugin.call(&mut self.ctx, &hook, Device::Cpu, |inner| {
            if generator.is_some() {
                inner.instance.store.data_mut().generator = generator;
            }
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_start_pass(&mut inner.instance.store, split, self.index, info)
        })?;
        out.map_err(|m| self.plugin.err(&hook, None, m))
    }

    fn next_batch(&mut self) -> Result<Option<Vec<Tensor>>> {
        let hook = self.hook("next_batch");
        let (split, index) = (wit_split(self.split), self.index);
        let out = self.plugin.call(&mut self.ctx, &hook, Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            match g.call_next_batch(&mut inner.instance.store, split, index)? {
                Ok(Some(handles)) => Ok(Ok(Some(take_tensors(inner, handles)?))),
                Ok(None) => Ok(Ok(None)),
                Err(m) => Ok(Err(m)),
            }
        })?;
        out.map_err(|m| self.plugin.err(&hook, None, m))
    }
}

/// The items of a map-style dataset, fetched by the plugin's own instance.
struct PluginItems {
    plugin: WasmPlugin,
    split: Split,
    /// Which of the split's DataLoaders.
    index: u32,
    /// What the instance's calls are lent (on the CPU; the loop moves batches).
    ctx: RunContext,
}

impl ItemFetcher for PluginItems {
    fn fetch(
        &mut self,
        indices: &[u64],
        generator: &mut Option<Generator>,
        worker: Option<WorkerInfo>,
    ) -> Result<Vec<Tensor>> {
        let hook = format!("{}_dataloader.fetch", loader_name(self.split, self.index));
        let (split, index) = (wit_split(self.split), self.index);
        let worker =
            worker.map(|w| WitWorkerInfo { id: w.id, num_workers: w.num_workers, seed: w.seed, epoch: w.epoch });
        let lent = generator.take();
        let mut back = None;
        let out = self.plugin.call(&mut self.ctx, &hook, Device::Cpu, |inner| {
            // A worker's generator for this batch's random ops, given back after.
            let run = std::mem::replace(&mut inner.instance.store.data_mut().generator, lent);
            let got = match WasmPlugin::data_guest(inner) {
                Ok(g) => g.clone().call_fetch(&mut inner.instance.store, split, index, indices, worker),
                Err(e) => Err(e),
            };
            back = std::mem::replace(&mut inner.instance.store.data_mut().generator, run);
            match got? {
                Ok(handles) => Ok(Ok(take_tensors(inner, handles)?)),
                Err(m) => Ok(Err(m)),
            }
        });
        *generator = back;
        out?.map_err(|m| self.plugin.err(&hook, None, m))
    }

    fn sample(&mut self, base_seed: bool) -> Result<(Option<i64>, Vec<Vec<u64>>)> {
        let hook = format!("{}_dataloader.sample", loader_name(self.split, self.index));
        let (split, index) = (wit_split(self.split), self.index);
        let out = self.plugin.call(&mut self.ctx, &hook, Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_sample(&mut inner.instance.store, split, index, base_seed)
        })?;
        let pass = out.map_err(|m| self.plugin.err(&hook, None, m))?;
        match (base_seed, pass.base_seed) {
            (true, None) => Err(self.plugin.err(&hook, None, "asked for the pass's base seed, it gave none".into())),
            // A seed it was not asked for is not one torch would have drawn: not used.
            (drew, seed) => Ok((seed.filter(|_| drew), pass.batches)),
        }
    }
}

/// Makes worker instances of an admitted component.
struct PluginWorkers {
    runtime: Arc<Runtime>,
    admitted: Arc<Admitted>,
    /// The plugin's `setup` calls (arguments, the generator state each drew from) and the
    /// states it was restored to, in order.
    setup: Vec<SetupStep>,
    split: Split,
    index: u32,
    /// How many workers share the plugin's limits.
    share: usize,
}

impl WorkerFactory for PluginWorkers {
    fn spawn(&self, id: u32) -> Result<Box<dyn BatchSource>> {
        let mut plugin = instantiate(&self.runtime, &self.admitted, self.share)?;
        // Random ops in the worker's `setup` must not draw from the run's generator (another
        // thread's): the worker's own, in the state the plugin's `setup` started from (so it
        // makes the same random data), until the first pass reseeds it.
        let mut ctx = RunContext::default();
        let mut ready = || -> Result<()> {
            for step in &self.setup {
                match step {
                    SetupStep::Setup { stage, hparams, rng } => {
                        plugin.inner_mut().instance.store.data_mut().generator =
                            Some(Generator::from_state(rng).map_err(|e| anyhow!("{}", e.detail))?);
                        let hparams: serde_json::Value =
                            serde_json::from_str(hparams).map_err(|e| anyhow!("hyper-parameters: {e}"))?;
                        DataModule::setup(&mut plugin, &mut ctx, *stage, &hparams)?;
                    }
                    SetupStep::LoadState(s) => DataModule::load_state(&mut plugin, &mut ctx, s)?,
                }
            }
            // The plugin's own instance was asked for the stream before its workers started.
            plugin.declared_stream(&mut ctx, self.split, self.index).map(|_| ())
        };
        ready().map_err(|e| anyhow!("DataLoader worker {id}: {e:#}"))?;
        Ok(Box::new(PluginStream { plugin, split: self.split, index: self.index, worker: Some(id), ctx }))
    }
}

/// The host's tensors behind handles a plugin handed over (the handles end).
fn take_tensors(inner: &mut Inner, handles: Vec<Resource<Tensor>>) -> wasmtime::Result<Vec<Tensor>> {
    handles.into_iter().map(|h| WasmPlugin::take_tensor(inner, h)).collect()
}

/// How errors name DataLoader `index` of a split: `val` for the first, `val[1]` after it.
fn loader_name(split: Split, index: u32) -> String {
    match index {
        0 => split.name().to_string(),
        i => format!("{}[{i}]", split.name()),
    }
}

pub(super) fn wit_split(split: Split) -> WitSplit {
    match split {
        Split::Train => WitSplit::Train,
        Split::Val => WitSplit::Val,
        Split::Test => WitSplit::Test,
        Split::Predict => WitSplit::Predict,
    }
}

impl DataModule for WasmPlugin {
    fn name(&self) -> &str {
        Module::name(self)
    }

    fn setup(&mut self, ctx: &mut RunContext, stage: Stage, hparams: &Value) -> Result<SavedHparams> {
        let text = hparams.to_string();
        let rng = torch_ext::cpu_rng_state().map_err(|e| anyhow!("setup: {}", e.detail))?;
        self.inner_mut().setup_log.push(SetupStep::Setup { stage, hparams: text.clone(), rng });
        let out = self.call(ctx, "setup", Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_setup(&mut inner.instance.store, stage_out(stage), &text)
        })?;
        let saved = out.map_err(|msg| self.err("setup", None, msg))?;
        SavedHparams::from_json(&saved.hparams, saved.log).map_err(|e| self.err("setup", None, format!("returned {e}")))
    }

    fn has_attr(&mut self, ctx: &mut RunContext, name: &str) -> Result<bool> {
        Ok(self.call(ctx, "datamodule.lightning_hasattr", Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_has_attr(&mut inner.instance.store, name)
        })?)
    }

    fn set_attr(&mut self, ctx: &mut RunContext, name: &str, value: crate::module::AttrValue) -> Result<()> {
        let out = self.call(ctx, "datamodule.lightning_setattr", Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_set_attr(&mut inner.instance.store, name, crate::plugin::convert::attr_to_wit(value))
        })?;
        out.map_err(|m| self.err("datamodule.lightning_setattr", None, m))
    }

    fn get_attr(&mut self, ctx: &mut RunContext, name: &str) -> Result<Option<crate::module::AttrValue>> {
        let out = self.call(ctx, "datamodule.lightning_getattr", Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_get_attr(&mut inner.instance.store, name)
        })?;
        Ok(out.map(crate::plugin::convert::attr_from_wit))
    }

    fn save_state(&mut self, ctx: &mut RunContext) -> Result<Option<Vec<u8>>> {
        Ok(self.call(ctx, "datamodule.state_dict", Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_save_state(&mut inner.instance.store)
        })?)
    }

    fn load_state(&mut self, ctx: &mut RunContext, state: &[u8]) -> Result<()> {
        self.inner_mut().setup_log.push(SetupStep::LoadState(state.to_vec()));
        let out = self.call(ctx, "datamodule.load_state_dict", Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_load_state(&mut inner.instance.store, state)
        })?;
        out.map_err(|m| self.err("datamodule.load_state_dict", None, m))
    }

    fn dataset(&mut self, ctx: &mut RunContext, split: Split, index: u32) -> Result<Option<DatasetSpec>> {
        let wit_split = wit_split(split);
        let hook = format!("{}_dataloader", loader_name(split, index));
        let spec = self.call(ctx, &hook, Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            let Some(ds) = g.call_dataloader(&mut inner.instance.store, wit_split, index)? else { return Ok(None) };
            let columns = take_tensors(inner, ds.columns)?;
            let sampler = ds.sampler.as_ref().map(convert::sampler);
            Ok(Some((
                DatasetSpec {
                    columns,
                    batch_size: ds.batch_size as usize,
                    shuffle: ds.shuffle,
                    drop_last: ds.drop_last,
                    sampler,
                    items: None,
                    persistent_workers: ds.persistent_workers,
                },
                ds.items.map(|len| (len, ds.num_workers)),
            )))
        })?;
        Ok(spec.map(|(mut spec, items)| {
            spec.items = items.map(|(len, num_workers)| ItemSpec {
                len,
                num_workers,
                fetcher: Box::new(PluginItems { plugin: self.clone(), split, index, ctx: RunContext::default() }),
            });
            spec
        }))
    }

    fn stream(&mut self, ctx: &mut RunContext, split: Split, index: u32) -> Result<Option<StreamSpec>> {
        self.stream_spec(ctx, split, index)
    }
}
