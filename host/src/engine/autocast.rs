//! torch.autocast and torch's default dtype, through `csrc/autocast.cpp`: the same libtorch
//! switches `torch.autocast.__enter__`/`__exit__` and `torch.set_default_dtype` flip. Autocast
//! state is per thread (as in torch); the default dtype is the process's.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tch::{Device, Kind};

extern "C" {
    fn lthost_autocast_enabled(device_type: i32) -> i32;
    fn lthost_set_autocast_enabled(device_type: i32, enabled: i32);
    fn lthost_autocast_dtype(device_type: i32) -> i32;
    fn lthost_set_autocast_dtype(device_type: i32, dtype: i32);
    fn lthost_autocast_increment_nesting() -> i32;
    fn lthost_autocast_decrement_nesting() -> i32;
    fn lthost_autocast_clear_cache();
    fn lthost_autocast_cache_enabled() -> i32;
    fn lthost_set_autocast_cache_enabled(enabled: i32);
    fn lthost_default_dtype() -> i32;
    fn lthost_set_default_dtype(dtype: i32);
}

/// A device type autocast has a state for (c10's `DeviceType` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutocastDevice {
    Cpu = 0,
    Cuda = 1,
}

impl AutocastDevice {
    pub const ALL: [AutocastDevice; 2] = [AutocastDevice::Cpu, AutocastDevice::Cuda];

    /// The autocast device type of a tensor device (`torch.autocast(x.device.type)`).
    pub fn of(device: Device) -> Self {
        match device {
            Device::Cuda(_) => AutocastDevice::Cuda,
            _ => AutocastDevice::Cpu,
        }
    }

    /// `"cpu"` or `"cuda"` (torch's `device_type` argument); None for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cpu" => Some(AutocastDevice::Cpu),
            "cuda" => Some(AutocastDevice::Cuda),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AutocastDevice::Cpu => "cpu",
            AutocastDevice::Cuda => "cuda",
        }
    }
}

/// c10's `ScalarType` number of the floating dtypes autocast and the default dtype take.
fn scalar_type(kind: Kind) -> i32 {
    match kind {
        Kind::Half => 5,
        Kind::Float => 6,
        Kind::Double => 7,
        Kind::BFloat16 => 15,
        // Callers pass floating kinds only; float32 is torch's default either way.
        _ => 6,
    }
}

fn kind(scalar_type: i32) -> Kind {
    match scalar_type {
        5 => Kind::Half,
        7 => Kind::Double,
        15 => Kind::BFloat16,
        _ => Kind::Float,
    }
}

/// `torch.is_autocast_enabled(device_type)` on this thread.
pub fn is_enabled(device: AutocastDevice) -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { lthost_autocast_enabled(device as i32) != 0 }
}

/// `torch.set_autocast_enabled(device_type, enabled)` on this thread.
pub fn set_enabled(device: AutocastDevice, enabled: bool) {
    // SAFETY: sets a thread-local flag.
    unsafe { lthost_set_autocast_enabled(device as i32, i32::from(enabled)) }
}

/// `torch.get_autocast_dtype(device_type)` on this thread.
pub fn dtype(device: AutocastDevice) -> Kind {
    // SAFETY: reads a thread-local value.
    kind(unsafe { lthost_autocast_dtype(device as i32) })
}

/// `torch.set_autocast_dtype(device_type, dtype)` on this thread (a floating dtype).
pub fn set_dtype(device: AutocastDevice, dtype: Kind) {
    // SAFETY: sets a thread-local value.
    unsafe { lthost_set_autocast_dtype(device as i32, scalar_type(dtype)) }
}

/// `torch.autocast_increment_nesting()`: the new depth.
pub fn increment_nesting() -> i32 {
    // SAFETY: a thread-local counter.
    unsafe { lthost_autocast_increment_nesting() }
}

/// `torch.autocast_decrement_nesting()`: the new depth.
pub fn decrement_nesting() -> i32 {
    // SAFETY: a thread-local counter.
    unsafe { lthost_autocast_decrement_nesting() }
}

/// `torch.clear_autocast_cache()`.
pub fn clear_cache() {
    // SAFETY: clears this thread's cast cache.
    unsafe { lthost_autocast_clear_cache() }
}

/// `torch.is_autocast_cache_enabled()`.
pub fn cache_enabled() -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { lthost_autocast_cache_enabled() != 0 }
}

/// `torch.set_autocast_cache_enabled(enabled)`.
pub fn set_cache_enabled(enabled: bool) {
    // SAFETY: sets a thread-local flag.
    unsafe { lthost_set_autocast_cache_enabled(i32::from(enabled)) }
}

/// `with torch.autocast(device, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)`:
/// entered when made, left when dropped, each step as torch's `__enter__`/`__exit__`.
pub struct Autocast {
    device: AutocastDevice,
    prev_enabled: bool,
    prev_dtype: Kind,
    prev_cache_enabled: bool,
}

impl Autocast {
    pub fn enter(device: AutocastDevice, dtype: Kind, enabled: bool, cache_enabled: bool) -> Self {
        let scope = Autocast {
            device,
            prev_enabled: is_enabled(device),
            prev_dtype: self::dtype(device),
            prev_cache_enabled: self::cache_enabled(),
        };
        set_enabled(device, enabled);
        set_dtype(device, dtype);
        increment_nesting();
        set_cache_enabled(cache_enabled);
        scope
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // Drop the cache when leaving the outermost autocast scope.
        if decrement_nesting() == 0 {
            clear_cache();
        }
        set_enabled(self.device, self.prev_enabled);
        set_dtype(self.device, self.prev_dtype);
        set_cache_enabled(self.prev_cache_enabled);
    }
}

/// This thread's autocast switches, to put back after a plugin call that may have left a
/// scope open (a Rust plugin that entered one and returned, a trapped call).
#[derive(Debug, PartialEq)]
pub struct AutocastState {
    enabled: [bool; 2],
    dtype: [Kind; 2],
    cache_enabled: bool,
    nesting: i32,
}

impl AutocastState {
    pub fn capture() -> Self {
        // The depth, read by a step there and back.
        let nesting = increment_nesting() - 1;
        decrement_nesting();
        AutocastState {
            enabled: AutocastDevice::ALL.map(is_enabled),
            dtype: AutocastDevice::ALL.map(dtype),
            cache_enabled: cache_enabled(),
            nesting,
        }
    }

    /// Puts the state back; writes nothing when the call left it as it was (every plugin call
    /// ends here).
    pub fn restore(&self) {
        let now = AutocastState::capture();
        if now == *self {
            return;
        }
        let mut depth = now.nesting;
        while depth > self.nesting {
            depth = decrement_nesting();
        }
        while depth < self.nesting {
            depth = increment_nesting();
        }
        if self.nesting == 0 {
            clear_cache();
        }
        for (i, d) in AutocastDevice::ALL.into_iter().enumerate() {
            set_enabled(d, self.enabled[i]);
            set_dtype(d, self.dtype[i]);
        }
        set_cache_enabled(self.cache_enabled);
    }
}

/// `torch.get_default_dtype()`: the dtype factory functions give floating tensors when
/// none is named.
pub fn default_dtype() -> Kind {
    // SAFETY: reads a process-wide value.
    kind(unsafe { lthost_default_dtype() })
}

/// Torch's default dtype is the process's, not a thread's: threads that run plugin code beside
/// the run's (DataLoader workers, the prefetcher) hold this shared while they make data, and a
/// [`DefaultDtype`] (a true precision's step or `configure_model`) holds it exclusively, so no
/// worker op ever sees the step's dtype (Lightning's workers are processes of their own).
static DEFAULT_DTYPE_USERS: RwLock<()> = RwLock::new(());

/// Held by a data thread while it runs plugin code (see [`DEFAULT_DTYPE_USERS`]); never by
/// the run's thread.
pub fn data_thread_guard() -> RwLockReadGuard<'static, ()> {
    DEFAULT_DTYPE_USERS.read().unwrap_or_else(PoisonError::into_inner)
}

/// `torch.set_default_dtype(dtype)` for as long as the guard lives (Lightning's
/// `_DtypeContextManager`): put back when dropped. Waits for the data threads' plugin calls
/// in progress, and they for it.
pub struct DefaultDtype {
    prev: Kind,
    _exclusive: RwLockWriteGuard<'static, ()>,
}

impl DefaultDtype {
    pub fn set(dtype: Kind) -> Self {
        let exclusive = DEFAULT_DTYPE_USERS.write().unwrap_or_else(PoisonError::into_inner);
        let prev = default_dtype();
        // SAFETY: a floating dtype (see `scalar_type`).
        unsafe { lthost_set_default_dtype(scalar_type(dtype)) };
        DefaultDtype { prev, _exclusive: exclusive }
    }
}

impl Drop for DefaultDtype {
    fn drop(&mut self) {
        // SAFETY: as in `set`; the lock is released after (the field drops after this).
        unsafe { lthost_set_default_dtype(scalar_type(self.prev)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_autocast_scope_casts_a_matmul_and_is_left_as_torch_leaves_it() {
        let a = tch::Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
        assert!(!is_enabled(AutocastDevice::Cpu));
        {
            let _scope = Autocast::enter(AutocastDevice::Cpu, Kind::BFloat16, true, false);
            assert!(is_enabled(AutocastDevice::Cpu));
            assert_eq!(dtype(AutocastDevice::Cpu), Kind::BFloat16);
            assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
            // Outside autocast's lists an op keeps its input dtype.
            assert_eq!((&a + &a).kind(), Kind::Float);
        }
        assert!(!is_enabled(AutocastDevice::Cpu));
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
    }

    #[test]
    fn a_scope_left_open_is_closed_by_restoring_the_state() {
        let state = AutocastState::capture();
        std::mem::forget(Autocast::enter(AutocastDevice::Cpu, Kind::Half, true, true));
        assert!(is_enabled(AutocastDevice::Cpu));
        state.restore();
        assert!(!is_enabled(AutocastDevice::Cpu));
        assert_eq!(dtype(AutocastDevice::Cpu), state.dtype[0]);
        assert_eq!(increment_nesting(), 1);
        assert_eq!(decrement_nesting(), 0);
    }
}
