//! The data a plugin's wasmtime store holds: its resource table, its WASI context (which
//! grants nothing but a read-only data directory and the standard streams), its limits, and
//! the [`RunContext`] lent to it for the duration of a hook.

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::context::RunContext;
use crate::error::OpError;

pub struct PluginState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub limits: StoreLimits,
    pub ctx: RunContext,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl PluginState {
    /// The tensor behind a guest handle, or an error naming the op that was given a bad one.
    pub fn tensor(&self, handle: &Resource<tch::Tensor>, op: &str) -> Result<&tch::Tensor, OpError> {
        self.table
            .get(handle)
            .map_err(|e| OpError::new(op, format!("bad tensor handle {}: {e}", handle.rep())))
    }

    /// Hands a new tensor to the guest.
    pub fn push(&mut self, t: tch::Tensor, op: &str) -> Result<Resource<tch::Tensor>, OpError> {
        self.table.push(t).map_err(|e| OpError::new(op, format!("resource table: {e}")))
    }

    /// A host resource (a layer) behind a guest handle.
    pub fn get<T: 'static>(&self, handle: &Resource<T>, op: &str) -> Result<&T, OpError> {
        self.table
            .get(handle)
            .map_err(|e| OpError::new(op, format!("bad handle {}: {e}", handle.rep())))
    }

    pub fn push_any<T: Send + 'static>(&mut self, v: T, op: &str) -> Result<Resource<T>, OpError> {
        self.table.push(v).map_err(|e| OpError::new(op, format!("resource table: {e}")))
    }
}
