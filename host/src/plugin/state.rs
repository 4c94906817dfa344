//! The data a plugin's wasmtime store holds: its resource table, its WASI context (which
//! grants nothing but a read-only data directory and the standard streams), its limits, and
//! the [`RunContext`] lent to it for the duration of a hook. Host interfaces never see it
//! whole: each is implemented on its own view of it ([`crate::plugin::views`]).

use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use std::sync::Arc;

use crate::context::RunContext;
use crate::engine::memory_budget::MemoryBudget;
use crate::plugin::handles::Handles;

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

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl PluginState {
    /// The guest's handles: what every host interface's view starts from.
    pub fn handles(&mut self) -> Handles<'_> {
        Handles { table: &mut self.table, budget: &mut self.budget, deadline: self.deadline }
    }
}
