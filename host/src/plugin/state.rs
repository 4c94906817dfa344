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
    pub budget: Budget,
    /// A DataLoader worker instance's own generator (seeded per pass); None: random ops draw
    /// from the run's generator.
    pub generator: Option<crate::engine::torch_ext::Generator>,
}

/// The host-side resources a plugin may hold: tensor memory (counted by each handle's
/// logical size, views included, so the bound is conservative) and live handles. A
/// request that would exceed them is refused before libtorch allocates.
#[derive(Debug, Clone)]
pub struct Budget {
    pub max_tensor_bytes: u64,
    pub tensor_bytes: u64,
    pub max_handles: usize,
    pub handles: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_tensor_bytes: 8 << 30, tensor_bytes: 0, max_handles: 100_000, handles: 0 }
    }
}

fn mib(b: u64) -> u64 {
    b >> 20
}

/// A tensor's logical size in bytes.
pub fn tensor_bytes(t: &tch::Tensor) -> u64 {
    (t.numel() as u64).saturating_mul(t.kind().elt_size_in_bytes() as u64)
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

    /// Hands a new tensor to the guest, within the budget.
    pub fn push(&mut self, t: tch::Tensor, op: &str) -> Result<Resource<tch::Tensor>, OpError> {
        let bytes = tensor_bytes(&t);
        self.admit(op, bytes)?;
        let r = self.table.push(t).map_err(|e| OpError::new(op, format!("resource table: {e}")))?;
        self.budget.handles += 1;
        self.budget.tensor_bytes += bytes;
        Ok(r)
    }

    fn admit(&self, op: &str, bytes: u64) -> Result<(), OpError> {
        let b = &self.budget;
        if b.handles >= b.max_handles {
            return Err(OpError::new(op, format!("the plugin holds {} live handles, its limit (plugin.max_live_handles): drop the ones it no longer needs", b.handles)));
        }
        if b.tensor_bytes.saturating_add(bytes) > b.max_tensor_bytes {
            return Err(OpError::new(
                op,
                format!("{} MiB more would bring the plugin's tensors to {} MiB, over its budget of {} MiB (plugin.tensor_memory_limit_mb)", mib(bytes), mib(b.tensor_bytes.saturating_add(bytes)), mib(b.max_tensor_bytes)),
            ));
        }
        Ok(())
    }

    /// Refuses, before libtorch allocates, a new tensor of `elements` elements of up to 8
    /// bytes that the budget cannot hold.
    pub fn check_alloc(&self, op: &str, elements: i64) -> Result<(), OpError> {
        self.admit(op, (elements.max(0) as u64).saturating_mul(8))
    }

    /// A tensor handle the guest gave back or dropped.
    pub fn release(&mut self, t: &tch::Tensor) {
        self.budget.handles = self.budget.handles.saturating_sub(1);
        self.budget.tensor_bytes = self.budget.tensor_bytes.saturating_sub(tensor_bytes(t));
    }

    /// A host resource (a layer) behind a guest handle.
    pub fn get<T: 'static>(&self, handle: &Resource<T>, op: &str) -> Result<&T, OpError> {
        self.table
            .get(handle)
            .map_err(|e| OpError::new(op, format!("bad handle {}: {e}", handle.rep())))
    }

    pub fn push_any<T: Send + 'static>(&mut self, v: T, op: &str) -> Result<Resource<T>, OpError> {
        self.admit(op, 0)?;
        let r = self.table.push(v).map_err(|e| OpError::new(op, format!("resource table: {e}")))?;
        self.budget.handles += 1;
        Ok(r)
    }
}
