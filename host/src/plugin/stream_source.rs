//! A plugin's streaming source as the loops see it: its own instance making batches
//! between steps, or worker instances of the same admitted component, each in a store of
//! its own on its worker's thread, `setup` as the plugin was, with a generator of its own
//! seeded per pass (torch seeds each DataLoader worker with base_seed + id).

use std::sync::Arc;

use anyhow::{anyhow, Result};
use tch::{Device, Tensor};

use crate::context::{RunContext, Stage};
use crate::engine::torch_ext::Generator;
use crate::module::{BatchSource, DataModule, Split, StreamSpec, WorkerFactory, WorkerInfo};
use crate::plugin::adapter::{instantiate, wit_split, WasmPlugin};
use crate::plugin::bindings::data_module::WorkerInfo as WitWorkerInfo;
use crate::plugin::runtime::Runtime;
use crate::plugin::sandbox::Admitted;

impl WasmPlugin {
    /// The split's stream, if the plugin declares one.
    pub(super) fn stream_spec(&mut self, ctx: &mut RunContext, split: Split) -> Result<Option<StreamSpec>> {
        let hook = format!("{}_stream", split.name());
        let declared = self.call(ctx, &hook, Device::Cpu, |inner| {
            let g = Self::data_guest(inner)?.clone();
            g.call_streaming(&mut inner.store, wit_split(split))
        })?;
        let Some(s) = declared else { return Ok(None) };
        let workers: Option<Arc<dyn WorkerFactory>> = match (s.num_workers, self.origin(), self.setup_args()) {
            (0, _, _) => None,
            (_, Some((runtime, admitted)), Some(setup)) => Some(Arc::new(PluginWorkers { runtime, admitted, setup, split })),
            _ => None,
        };
        let main = Box::new(PluginStream { plugin: self.clone(), split, worker: None, ctx: RunContext::default() });
        Ok(Some(StreamSpec { num_batches: s.num_batches, num_workers: s.num_workers, main, workers }))
    }
}

/// One instance's batches.
struct PluginStream {
    plugin: WasmPlugin,
    split: Split,
    /// A worker instance's id (its random ops draw from its own generator).
    worker: Option<u32>,
    /// What the instance's calls are lent (on the CPU; the loop moves batches).
    ctx: RunContext,
}

impl PluginStream {
    fn hook(&self, what: &str) -> String {
        match self.worker {
            Some(i) => format!("{}_stream.{what} (worker {i})", self.split.name()),
            None => format!("{}_stream.{what}", self.split.name()),
        }
    }
}

impl BatchSource for PluginStream {
    fn start_pass(&mut self, w: WorkerInfo) -> Result<()> {
        let hook = self.hook("start_pass");
        let generator = if self.worker.is_some() { Some(Generator::seeded(w.seed).map_err(|e| anyhow!("{hook}: {e}"))?) } else { None };
        let split = wit_split(self.split);
        let info = WitWorkerInfo { id: w.id, num_workers: w.num_workers, seed: w.seed, epoch: w.epoch };
        let out = self.plugin.call(&mut self.ctx, &hook, Device::Cpu, |inner| {
            if generator.is_some() {
                inner.store.data_mut().generator = generator;
            }
            let g = WasmPlugin::data_guest(inner)?.clone();
            g.call_start_pass(&mut inner.store, split, info)
        })?;
        out.map_err(|m| self.plugin.err(&hook, None, m))
    }

    fn next_batch(&mut self) -> Result<Option<Vec<Tensor>>> {
        let hook = self.hook("next_batch");
        let split = wit_split(self.split);
        let out = self.plugin.call(&mut self.ctx, &hook, Device::Cpu, |inner| {
            let g = WasmPlugin::data_guest(inner)?.clone();
            match g.call_next_batch(&mut inner.store, split)? {
                Ok(Some(handles)) => {
                    let mut batch = Vec::with_capacity(handles.len());
                    for h in handles {
                        batch.push(WasmPlugin::take_tensor(inner, h)?);
                    }
                    Ok(Ok(Some(batch)))
                }
                Ok(None) => Ok(Ok(None)),
                Err(m) => Ok(Err(m)),
            }
        })?;
        out.map_err(|m| self.plugin.err(&hook, None, m))
    }
}

/// Makes worker instances of an admitted component.
struct PluginWorkers {
    runtime: Arc<Runtime>,
    admitted: Arc<Admitted>,
    setup: (Stage, String),
    split: Split,
}

impl WorkerFactory for PluginWorkers {
    fn spawn(&self, id: u32) -> Result<Box<dyn BatchSource>> {
        let mut plugin = instantiate(&self.runtime, &self.admitted)?;
        let mut ctx = RunContext::default();
        let hparams: serde_json::Value = serde_json::from_str(&self.setup.1).map_err(|e| anyhow!("worker {id}: hyper-parameters: {e}"))?;
        plugin.setup(&mut ctx, self.setup.0, &hparams).map_err(|e| anyhow!("DataLoader worker {id}: {e:#}"))?;
        Ok(Box::new(PluginStream { plugin, split: self.split, worker: Some(id), ctx }))
    }
}
