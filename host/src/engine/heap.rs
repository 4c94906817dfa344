//! glibc's heap, kept for reuse between training steps. By default glibc hands large freed
//! blocks back to the kernel (blocks over its mmap threshold are unmapped; free space at the
//! heap's top over its trim threshold is released), and the thresholds adapt to whatever
//! the process happened to free first. A trainer frees and re-allocates the same workspace
//! sizes every step (oneDNN's LSTM workspaces, activations), so each step then faults
//! fresh pages in again: on Lightning's ParityModuleRNN that was ~10× the page faults of the
//! same loop in a plain tch binary and ~20% of the epoch time. Fixed thresholds keep freed
//! memory in the process for the next step (what PyTorch's caching allocator does on GPUs).

/// Blocks up to this size come from the heap (glibc's own upper bound for the adaptive
/// threshold).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the heap's top kept before any is released.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Fixes glibc's mmap and trim thresholds (once, at start-up, before libtorch allocates).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
