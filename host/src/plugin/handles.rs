//! The guest's handles as every host interface sees them: the store's resource table, the
//! plugin's budget (tensor memory, live handles) and the running hook's deadline. A handle
//! is admitted here, within the budget and the deadline, and released here.

use std::time::Instant;

use wasmtime::component::{Resource, ResourceTable};

use crate::error::OpError;
use crate::plugin::state::Budget;

pub struct Handles<'a> {
    pub table: &'a mut ResourceTable,
    pub budget: &'a mut Budget,
    /// When the running hook's time is up (see [`PluginState::deadline`]).
    ///
    /// [`PluginState::deadline`]: crate::plugin::state::PluginState::deadline
    pub deadline: Option<Instant>,
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

fn mib(b: u64) -> u64 {
    b >> 20
}

impl Handles<'_> {
    /// The tensor behind a guest handle, or an error naming the op that was given a bad one.
    pub fn tensor(&self, handle: &Resource<tch::Tensor>, op: &str) -> Result<&tch::Tensor, OpError> {
        crate::plugin::panic_guard::set_op(op);
        tensor_in(self.table, handle, op)
    }

    /// Hands a new tensor to the guest, within the handle bound (its memory was charged when
    /// libtorch allocated it) and the hook's time.
    pub fn push(&mut self, t: tch::Tensor, op: &str) -> Result<Resource<tch::Tensor>, OpError> {
        self.admit(op, 0)?;
        if let Some(d) = self.deadline {
            let now = Instant::now();
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

    /// A host resource (a layer, an operator) behind a guest handle.
    pub fn get<T: 'static>(&self, handle: &Resource<T>, op: &str) -> Result<&T, OpError> {
        self.table.get(handle).map_err(|e| OpError::new(op, format!("bad handle {}: {e}", handle.rep())))
    }

    /// Hands a host resource to the guest, within the handle bound.
    pub fn push_any<T: Send + 'static>(&mut self, v: T, op: &str) -> Result<Resource<T>, OpError> {
        self.admit(op, 0)?;
        let r = self.table.push(v).map_err(|e| OpError::new(op, format!("resource table: {e}")))?;
        self.budget.handles += 1;
        Ok(r)
    }

    /// Takes back what a handle the guest gave back or dropped held (a tensor, a layer).
    pub fn take<T: 'static>(&mut self, handle: Resource<T>) -> wasmtime::Result<T> {
        let v = self.table.delete(handle)?;
        self.budget.handles = self.budget.handles.saturating_sub(1);
        Ok(v)
    }
}
