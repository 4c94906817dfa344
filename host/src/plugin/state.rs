//! The data a plugin's wasmtime store holds: its resource table, its WASI context (which
//! grants nothing but a read-only data directory and the standard streams), its limits, and
//! the [`RunContext`] lent to it for the duration of a hook.

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use std::sync::Arc;

use crate::context::RunContext;
use crate::engine::memory_budget::MemoryBudget;
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
    /// The run has a data directory this plugin's manifest did not ask for (`data-read`).
    pub data_declined: bool,
    /// The inference-mode scopes the running hook entered (`aten.push-inference-mode`),
    /// innermost last; the hook's end leaves any it left open.
    pub inference_scopes: InferenceScopes,
    /// When the running hook's time is up (set by the adapter for each call): an op that
    /// finishes past it fails naming itself, since a long libtorch kernel cannot be
    /// interrupted and the epoch deadline would only trip in whatever guest code ran next.
    pub deadline: Option<std::time::Instant>,
    /// The bytes it may still write into its writable grants.
    pub disk: Arc<crate::plugin::disk_quota::DiskQuota>,
    /// The operators it called by index (`aten.index`).
    pub ops: crate::plugin::op_index::OpIndex,
    /// The error of its last failed `aten.try-*` call, until `aten.last-error` takes it.
    pub last_op_error: Option<String>,
}

/// Inference-mode guards a hook entered. A guard belongs to the thread it was made on; the
/// adapter empties this before the hook's call returns, on that thread, so a store that moves
/// to another thread (a worker's) never carries one.
#[derive(Default)]
pub struct InferenceScopes(pub Vec<crate::engine::torch_ext::InferenceMode>);

// SAFETY: see the type's comment: it is empty whenever the store can change threads.
unsafe impl Send for InferenceScopes {}

/// The host-side resources a plugin may hold: tensor memory, charged where libtorch
/// allocates while the plugin's calls run (by storage: views, autograd's saved tensors,
/// parameters, outputs the host keeps — see [`MemoryBudget`]), and live handles.
pub struct Budget {
    pub memory: Arc<MemoryBudget>,
    pub max_handles: usize,
    pub handles: usize,
}

/// The default tensor budget (`plugin.tensor_memory_limit_mb`) and handle bound.
pub const DEFAULT_TENSOR_BYTES: u64 = 8 << 30;
pub const DEFAULT_MAX_HANDLES: usize = 100_000;
/// The default disk quota (`plugin.disk_quota_mb`).
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;

impl Budget {
    /// A store's budget: the plugin's tensor memory (one budget shared by all its instances:
    /// a DataModule's workers charge the same one) and this store's handle bound.
    pub fn new(memory: Arc<MemoryBudget>, max_handles: usize) -> Budget {
        Budget { memory, max_handles, handles: 0 }
    }
}

fn mib(b: u64) -> u64 {
    b >> 20
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The tensor behind a guest handle in `table`, or an error naming the op that was given a
/// bad one (for a caller that borrows the table apart from the rest of the state).
pub fn tensor_in<'a>(
    table: &'a ResourceTable,
    handle: &Resource<tch::Tensor>,
    op: &str,
) -> Result<&'a tch::Tensor, OpError> {
    table.get(handle).map_err(|e| OpError::new(op, format!("bad tensor handle {}: {e}", handle.rep())))
}

impl PluginState {
    /// The tensor behind a guest handle, or an error naming the op that was given a bad one.
    pub fn tensor(&self, handle: &Resource<tch::Tensor>, op: &str) -> Result<&tch::Tensor, OpError> {
        crate::plugin::panic_guard::set_op(op);
        tensor_in(&self.table, handle, op)
    }

    /// Hands a new tensor to the guest, within the handle bound (its memory was charged when
    /// libtorch allocated it).
    pub fn push(&mut self, t: tch::Tensor, op: &str) -> Result<Resource<tch::Tensor>, OpError> {
        self.admit(op, 0)?;
        if let Some(d) = self.deadline {
            let now = std::time::Instant::now();
            if now > d {
                return Err(OpError::new(
                    op,
                    format!(
                        "this op ended {:.1} s past the hook's time limit (hook_timeout_s); the hook was stopped",
                        (now - d).as_secs_f64()
                    ),
                ));
            }
        }
        let r = self.table.push(t).map_err(|e| OpError::new(op, format!("resource table: {e}")))?;
        self.budget.handles += 1;
        Ok(r)
    }

    fn admit(&self, op: &str, bytes: u64) -> Result<(), OpError> {
        let b = &self.budget;
        if b.handles >= b.max_handles {
            return Err(OpError::new(op, format!("the plugin holds {} live handles, its limit (plugin.max_live_handles): drop the ones it no longer needs", b.handles)));
        }
        let (used, limit) = (b.memory.used(), b.memory.limit());
        if used.saturating_add(bytes) > limit {
            return Err(OpError::new(
                op,
                format!("{} MiB more would bring the plugin's tensor memory to {} MiB, over its budget of {} MiB (plugin.tensor_memory_limit_mb)", mib(bytes), mib(used.saturating_add(bytes)), mib(limit)),
            ));
        }
        Ok(())
    }

    /// Refuses early a new tensor of `elements` elements that the budget cannot hold even
    /// at one byte each (the allocator refuses exactly, when libtorch allocates).
    pub fn check_alloc(&self, op: &str, elements: i64) -> Result<(), OpError> {
        crate::plugin::panic_guard::set_op(op);
        self.admit(op, elements.max(0) as u64)
    }

    /// A tensor handle the guest gave back or dropped.
    pub fn release(&mut self, _t: &tch::Tensor) {
        self.budget.handles = self.budget.handles.saturating_sub(1);
    }

    /// A host resource (a layer) behind a guest handle.
    pub fn get<T: 'static>(&self, handle: &Resource<T>, op: &str) -> Result<&T, OpError> {
        self.table.get(handle).map_err(|e| OpError::new(op, format!("bad handle {}: {e}", handle.rep())))
    }

    pub fn push_any<T: Send + 'static>(&mut self, v: T, op: &str) -> Result<Resource<T>, OpError> {
        self.admit(op, 0)?;
        let r = self.table.push(v).map_err(|e| OpError::new(op, format!("resource table: {e}")))?;
        self.budget.handles += 1;
        Ok(r)
    }
}
