//! A plugin's tensor-memory budget, charged where libtorch allocates (the budgeted CPU
//! allocator, `csrc/budget_alloc.cpp`): while a [`Charging`] scope is open on a thread,
//! every CPU block libtorch allocates there — op outputs, views' storages, autograd's saved
//! tensors, parameters and buffers a plugin registers, batches it makes — counts against
//! the budget by storage until the block is freed, and one that would go over is refused
//! with an op error before any memory is taken.
//!
//! CUDA memory goes through libtorch's CUDA caching allocator, which this does not wrap:
//! on CUDA the budget holds for host-side (CPU) tensors only.

use std::ffi::c_void;
use std::ptr::NonNull;

extern "C" {
    fn lthost_budget_install();
    fn lthost_budget_new(limit: i64) -> *mut c_void;
    fn lthost_budget_free(b: *mut c_void);
    fn lthost_budget_used(b: *mut c_void) -> i64;
    fn lthost_budget_peak(b: *mut c_void) -> i64;
    fn lthost_budget_limit(b: *mut c_void) -> i64;
    fn lthost_budget_enter(b: *mut c_void) -> *mut c_void;
    fn lthost_budget_exit(prev: *mut c_void);
    fn lthost_budget_active() -> i32;
    fn lthost_budget_reserve(b: *mut c_void, n: i64) -> i32;
    fn lthost_budget_unreserve(b: *mut c_void, n: i64);
}

/// Makes the budgeted allocator libtorch's CPU allocator (once; idempotent).
pub fn install() {
    // SAFETY: takes no arguments; guarded by a once-flag on the C++ side.
    unsafe { lthost_budget_install() }
}

/// Whether allocations are being charged (the allocator is installed).
pub fn active() -> bool {
    // SAFETY: reads libtorch's allocator table.
    unsafe { lthost_budget_active() == 1 }
}

/// One budget: a limit and the bytes charged to it now.
pub struct MemoryBudget(NonNull<c_void>);

// SAFETY: the C++ budget is atomics only; it lives until its owner and every block charged
// to it have let go (reference counted).
unsafe impl Send for MemoryBudget {}
unsafe impl Sync for MemoryBudget {}

impl MemoryBudget {
    pub fn new(limit_bytes: u64) -> MemoryBudget {
        install();
        // SAFETY: returns a fresh, non-null heap object.
        let p = unsafe { lthost_budget_new(i64::try_from(limit_bytes).unwrap_or(i64::MAX)) };
        MemoryBudget(NonNull::new(p).unwrap_or_else(|| std::process::abort()))
    }

    pub fn used(&self) -> u64 {
        // SAFETY: a live budget.
        unsafe { lthost_budget_used(self.0.as_ptr()) }.max(0) as u64
    }

    pub fn peak(&self) -> u64 {
        // SAFETY: a live budget.
        unsafe { lthost_budget_peak(self.0.as_ptr()) }.max(0) as u64
    }

    pub fn limit(&self) -> u64 {
        // SAFETY: a live budget.
        unsafe { lthost_budget_limit(self.0.as_ptr()) }.max(0) as u64
    }

    /// Charges `bytes` the host holds on the plugin's behalf outside libtorch (a file read
    /// into memory) until the reservation is dropped; None if the budget cannot hold them.
    pub fn reserve(&self, bytes: u64) -> Option<Reservation<'_>> {
        let n = i64::try_from(bytes).ok()?;
        // SAFETY: a live budget.
        (unsafe { lthost_budget_reserve(self.0.as_ptr(), n) } == 1).then(|| Reservation { budget: self, bytes: n })
    }

    /// Charges this thread's CPU allocations to this budget until the scope ends (scopes
    /// nest: the one before is put back).
    pub fn charge(&self) -> Charging<'_> {
        // SAFETY: a live budget, kept alive by the borrow for the scope's length.
        let prev = unsafe { lthost_budget_enter(self.0.as_ptr()) };
        Charging { prev, _budget: std::marker::PhantomData }
    }
}

impl Drop for MemoryBudget {
    fn drop(&mut self) {
        // SAFETY: the owner's reference, given back once.
        unsafe { lthost_budget_free(self.0.as_ptr()) }
    }
}

/// Bytes charged by [`MemoryBudget::reserve`], given back on drop.
pub struct Reservation<'a> {
    budget: &'a MemoryBudget,
    bytes: i64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        // SAFETY: gives back exactly what `reserve` charged, to a budget the borrow keeps alive.
        unsafe { lthost_budget_unreserve(self.budget.0.as_ptr(), self.bytes) }
    }
}

/// An open charging scope (see [`MemoryBudget::charge`]); not `Send`: it belongs to the
/// thread that opened it.
pub struct Charging<'a> {
    prev: *mut c_void,
    _budget: std::marker::PhantomData<&'a MemoryBudget>,
}

impl Drop for Charging<'_> {
    fn drop(&mut self) {
        // SAFETY: restores what `enter` returned on this thread.
        unsafe { lthost_budget_exit(self.prev) }
    }
}

/// Charges nothing on this thread while it lives (host work inside a plugin's call).
pub fn uncharged() -> Charging<'static> {
    // SAFETY: null means "charge nobody".
    let prev = unsafe { lthost_budget_enter(std::ptr::null_mut()) };
    Charging { prev, _budget: std::marker::PhantomData }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn charges_storages_and_refuses_past_the_limit() {
        let b = MemoryBudget::new(10 << 20);
        let (t, view) = {
            let _c = b.charge();
            let t = Tensor::zeros([1 << 20], (Kind::Float, Device::Cpu));
            let view = t.f_narrow(0, 0, 10).unwrap();
            (t, view)
        };
        assert!(active());
        assert_eq!(b.used(), 4 << 20, "one storage, the view adds nothing");
        drop(t);
        assert_eq!(b.used(), 4 << 20, "the view keeps the whole storage alive and charged");
        drop(view);
        assert_eq!(b.used(), 0);
        let err = {
            let _c = b.charge();
            Tensor::f_zeros([3_000_000], (Kind::Int64, Device::Cpu)).err().expect("refused")
        };
        assert!(err.to_string().contains("over its budget"), "{err}");
        assert_eq!(b.used(), 0);
        assert!(b.peak() >= 4 << 20);
        // Host-side buffers can be charged too.
        let r = b.reserve(6 << 20).expect("fits");
        assert!(b.reserve(6 << 20).is_none(), "12 MiB would not fit in 10");
        assert_eq!(b.used(), 6 << 20);
        drop(r);
        assert_eq!(b.used(), 0);
        // Outside a scope nothing is charged.
        let _free = Tensor::zeros([1 << 22], (Kind::Float, Device::Cpu));
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_block_freed_after_its_budget_returns_its_charge_safely() {
        let b = MemoryBudget::new(1 << 30);
        let t = {
            let _c = b.charge();
            Tensor::ones([1000], (Kind::Double, Device::Cpu))
        };
        drop(b);
        let moved =
            std::thread::spawn(move || t.f_sum(Kind::Double).map(|s| s.double_value(&[]))).join().unwrap().unwrap();
        assert_eq!(moved, 1000.0);
    }
}
