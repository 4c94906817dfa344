//! libtorch switches tch does not expose (see `host/csrc/torch_ext.cpp`). A failed call is an
//! [`OpError`] naming the torch function.

use crate::error::{OpError, OpResult};

/// torch's `a.add(b, alpha=alpha)`: one fused kernel, rounded once (tch offers only
/// `alpha = 1`); what torch.optim's updates use.
pub fn add_alpha(a: &tch::Tensor, b: &tch::Tensor, alpha: f64) -> OpResult<tch::Tensor> {
    let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: both pointers are live tensors for the call; the result is a new heap tensor
    // (owned by the returned Tensor) or null with a malloc'd message.
    let out = unsafe { lthost_add_alpha(a.as_ptr().cast(), b.as_ptr().cast(), alpha, &mut err) };
    if out.is_null() {
        return Err(OpError::new("add", take_error(err)));
    }
    // SAFETY: a fresh `at::Tensor*` the C++ side allocated for us.
    Ok(unsafe { tch::Tensor::from_ptr(out.cast()) })
}

/// torch's in-place `a.add_(b, alpha=alpha)`: the same fused kernel, into `a`'s storage.
pub fn add_alpha_(a: &tch::Tensor, b: &tch::Tensor, alpha: f64) -> OpResult<()> {
    let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: live tensors for the call; `add_` writes `a`'s storage, not the handle (a const
    // method in ATen, as tch's own in-place ops on a shared `Tensor`).
    let rc = unsafe { lthost_add_alpha_(a.as_ptr().cast(), b.as_ptr().cast(), alpha, &mut err) };
    if rc != 0 {
        return Err(OpError::new("add_", take_error(err)));
    }
    Ok(())
}

/// torch's in-place `t.mul_(s)` as Python calls it (`aten::mul_.Tensor` with a wrapped number,
/// read in float by a bfloat16/float16 kernel; `f_mul_scalar_` rounds `s` to the dtype first).
pub fn mul_number_(t: &tch::Tensor, s: f64) -> OpResult<()> {
    let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: a live tensor for the call; `mul_` writes its storage (as `add_alpha_`).
    let rc = unsafe { lthost_mul_number_(t.as_ptr().cast(), s, &mut err) };
    if rc != 0 {
        return Err(OpError::new("mul_", take_error(err)));
    }
    Ok(())
}

/// torch's `s.addcmul(t1, t2, value=value)` (`div`: `addcdiv`), in place when `inplace`: the
/// fused kernel torch's optimizers call (one rounding for bfloat16/float16 tensors).
pub fn addc(
    s: &tch::Tensor,
    t1: &tch::Tensor,
    t2: &tch::Tensor,
    value: f64,
    div: bool,
    inplace: bool,
) -> OpResult<tch::Tensor> {
    let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: live tensors for the call; in place writes `s`'s storage (as `add_alpha_`); the
    // result is a new heap tensor or null with a malloc'd message.
    let out = unsafe {
        lthost_addc(
            s.as_ptr().cast(),
            t1.as_ptr().cast(),
            t2.as_ptr().cast(),
            value,
            i32::from(div),
            i32::from(inplace),
            &mut err,
        )
    };
    if out.is_null() {
        let op = match (div, inplace) {
            (true, true) => "addcdiv_",
            (true, false) => "addcdiv",
            (false, true) => "addcmul_",
            (false, false) => "addcmul",
        };
        return Err(OpError::new(op, take_error(err)));
    }
    // SAFETY: a fresh `at::Tensor*` the C++ side allocated for us.
    Ok(unsafe { tch::Tensor::from_ptr(out.cast()) })
}

/// The message of a failed shim call (a malloc'd C string, freed here), without libtorch's
/// C++ stack.
pub(crate) fn take_error(err: *mut std::ffi::c_char) -> String {
    // SAFETY: null or a NUL-terminated string a shim strdup'd for us.
    let msg = unsafe { take_string(err) };
    if msg.is_empty() {
        return "the op failed".to_string();
    }
    crate::error::without_cpp_stack(&msg)
}

/// A malloc'd C string from a shim, taken and freed ("" for null).
///
/// # Safety
/// `s` is null or a NUL-terminated string from malloc, not used after this.
pub(crate) unsafe fn take_string(s: *mut std::ffi::c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: per the contract above; freed once, here.
    unsafe {
        let out = std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned();
        libc::free(s.cast());
        out
    }
}

/// Unit tests that seed or draw from libtorch's global generator hold this, so that tests
/// running in parallel do not draw from each other's streams.
#[cfg(test)]
pub(crate) fn global_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

extern "C" {
    fn lthost_set_deterministic(enabled: i32);
    fn lthost_set_cuda_device(index: i32, err: *mut *mut std::ffi::c_char) -> i32;
    fn lthost_deterministic() -> i32;
    fn lthost_set_matmul_precision(level: i32);
    fn lthost_matmul_precision() -> i32;
    fn lthost_inference_mode_enter(enabled: i32) -> *mut std::ffi::c_void;
    fn lthost_inference_mode_exit(guard: *mut std::ffi::c_void);
    fn lthost_grad_set_enabled(enabled: i32) -> i32;
    fn lthost_grad_enabled() -> i32;
    fn lthost_set_grad(t: *const std::ffi::c_void, g: *const std::ffi::c_void, err: *mut *mut std::ffi::c_char) -> i32;
    fn lthost_backward(
        t: *const std::ffi::c_void,
        gradient: *const std::ffi::c_void,
        retain_graph: i32,
        create_graph: i32,
        err: *mut *mut std::ffi::c_char,
    ) -> i32;
    fn lthost_rng_state(cuda_index: i64, out: *mut u8, capacity: i64) -> i64;
    fn lthost_set_rng_state(cuda_index: i64, data: *const u8, len: i64) -> i64;
    fn lthost_draw_seed(out: *mut i64) -> i64;
    fn lthost_randperm_seeded(n: i64, seed: i64, out: *mut i64) -> i64;
    fn lthost_generator_new(seed: u64) -> *mut std::ffi::c_void;
    fn lthost_generator_free(gen: *mut std::ffi::c_void);
    fn lthost_generator_from_state(data: *const u8, len: i64) -> *mut std::ffi::c_void;
    fn lthost_generator_state(gen: *mut std::ffi::c_void, out: *mut u8, capacity: i64) -> i64;
    fn lthost_generator_set_state(gen: *mut std::ffi::c_void, data: *const u8, len: i64) -> i64;
    fn lthost_add_alpha(
        a: *const std::ffi::c_void,
        b: *const std::ffi::c_void,
        alpha: f64,
        err: *mut *mut std::ffi::c_char,
    ) -> *mut std::ffi::c_void;
    fn lthost_mul_number_(t: *const std::ffi::c_void, s: f64, err: *mut *mut std::ffi::c_char) -> i32;
    fn lthost_addc(
        s: *const std::ffi::c_void,
        t1: *const std::ffi::c_void,
        t2: *const std::ffi::c_void,
        value: f64,
        div: i32,
        inplace: i32,
        err: *mut *mut std::ffi::c_char,
    ) -> *mut std::ffi::c_void;
    fn lthost_add_alpha_(
        a: *const std::ffi::c_void,
        b: *const std::ffi::c_void,
        alpha: f64,
        err: *mut *mut std::ffi::c_char,
    ) -> i32;
    fn lthost_generator_fill(
        gen: *mut std::ffi::c_void,
        kind: i64,
        data: *mut std::ffi::c_void,
        n: i64,
        low: i64,
        high: i64,
    ) -> i64;
}

/// `torch.empty((), dtype=torch.int64).random_().item()` on the default CPU generator.
pub fn draw_seed() -> OpResult<i64> {
    let mut v = 0i64;
    // SAFETY: libtorch writes one i64 into `v`.
    let r = unsafe { lthost_draw_seed(&mut v) };
    if r != 0 {
        return Err(OpError::new("seed", "drawing a seed from the CPU generator failed"));
    }
    Ok(v)
}

/// `torch.randperm(n, generator=torch.Generator().manual_seed(seed))`.
pub fn randperm_seeded(n: i64, seed: i64) -> OpResult<Vec<i64>> {
    if n < 0 {
        return Err(OpError::new("randperm", format!("a negative size, {n}")));
    }
    let mut out = vec![0i64; n as usize];
    // SAFETY: libtorch writes exactly `n` i64 values into `out`, which holds `n`.
    let r = unsafe { lthost_randperm_seeded(n, seed, out.as_mut_ptr()) };
    if r != 0 {
        return Err(OpError::new("randperm", format!("randperm({n}) with seed {seed} failed")));
    }
    Ok(out)
}

/// A generator's state: `cuda_index` < 0 is the CPU generator.
fn rng_state(cuda_index: i64, name: &str) -> OpResult<Vec<u8>> {
    // SAFETY: `read` copies at most `capacity` bytes into `out` (a null `out`: the size only).
    read_state(|out, capacity| unsafe { lthost_rng_state(cuda_index, out, capacity) }, name)
}

/// A generator state through `read(out, capacity)` (the state's size; the bytes when they fit).
fn read_state(read: impl Fn(*mut u8, i64) -> i64, name: &str) -> OpResult<Vec<u8>> {
    let n = read(std::ptr::null_mut(), 0);
    if n < 0 {
        return Err(OpError::new("get_rng_state", format!("reading the {name} generator state failed")));
    }
    let mut buf = vec![0u8; n as usize];
    if read(buf.as_mut_ptr(), n) != n {
        return Err(OpError::new("get_rng_state", format!("the {name} generator state changed size while being read")));
    }
    Ok(buf)
}

fn set_rng_state(cuda_index: i64, state: &[u8], name: &str) -> OpResult<()> {
    // SAFETY: libtorch copies `len` bytes from `data`, which `state` provides.
    let r = unsafe { lthost_set_rng_state(cuda_index, state.as_ptr(), state.len() as i64) };
    if r != 0 {
        return Err(OpError::new(
            "set_rng_state",
            format!("libtorch refused a {name} generator state of {} bytes", state.len()),
        ));
    }
    Ok(())
}

/// The CPU generator's state, as `torch.get_rng_state()` returns it.
pub fn cpu_rng_state() -> OpResult<Vec<u8>> {
    rng_state(-1, "CPU")
}

/// Restores a state from [`cpu_rng_state`] (`torch.set_rng_state`).
pub fn set_cpu_rng_state(state: &[u8]) -> OpResult<()> {
    set_rng_state(-1, state, "CPU")
}

/// CUDA device `index`'s generator state (`torch.cuda.get_rng_state(index)`).
pub fn cuda_rng_state(index: usize) -> OpResult<Vec<u8>> {
    rng_state(index as i64, &format!("cuda:{index}"))
}

pub fn set_cuda_rng_state(index: usize, state: &[u8]) -> OpResult<()> {
    set_rng_state(index as i64, state, &format!("cuda:{index}"))
}

/// The generators' states: the CPU's, and the run's CUDA device's (what Lightning's
/// `isolate_rng` saves and puts back).
#[derive(Debug, Clone)]
pub struct RngState {
    pub cpu: Vec<u8>,
    pub cuda: Option<(usize, Vec<u8>)>,
}

impl RngState {
    pub fn now(device: tch::Device) -> OpResult<RngState> {
        let cuda = match device {
            tch::Device::Cuda(i) => Some((i, cuda_rng_state(i)?)),
            _ => None,
        };
        Ok(RngState { cpu: cpu_rng_state()?, cuda })
    }

    pub fn restore(&self) -> OpResult<()> {
        set_cpu_rng_state(&self.cpu)?;
        if let Some((i, s)) = &self.cuda {
            set_cuda_rng_state(*i, s)?;
        }
        Ok(())
    }
}

/// `torch.cuda.set_device(index)`: this thread's current CUDA device (what a bare "cuda" is).
pub fn set_cuda_device(index: usize) -> anyhow::Result<()> {
    let mut err = std::ptr::null_mut();
    // SAFETY: an index and an out-pointer for the message.
    if unsafe { lthost_set_cuda_device(index as i32, &mut err) } != 0 {
        anyhow::bail!("torch.cuda.set_device({index}): {}", take_error(err));
    }
    Ok(())
}

/// `torch.use_deterministic_algorithms(enabled)`: ops without a deterministic
/// implementation then raise instead of running.
pub fn set_deterministic(enabled: bool) {
    // SAFETY: sets a flag in libtorch's global context; no pointers involved.
    unsafe { lthost_set_deterministic(i32::from(enabled)) }
}

pub fn deterministic() -> bool {
    // SAFETY: reads a flag in libtorch's global context.
    unsafe { lthost_deterministic() != 0 }
}

/// torch's float32 matmul precisions, in the order libtorch numbers them.
const MATMUL_PRECISIONS: [&str; 3] = ["highest", "high", "medium"];

/// `torch.set_float32_matmul_precision(precision)`: libtorch's global setting, for the rest of
/// the process (on a CPU with bf16 units, oneDNN matmuls may then compute in bfloat16, as
/// torch's do).
pub fn set_float32_matmul_precision(precision: &str) -> Result<(), OpError> {
    let Some(level) = MATMUL_PRECISIONS.iter().position(|p| *p == precision) else {
        return Err(OpError::new(
            "set_float32_matmul_precision",
            format!("{precision:?} is not one of 'highest', 'high' or 'medium'"),
        ));
    };
    // SAFETY: sets a value in libtorch's global context; no pointers involved.
    unsafe { lthost_set_matmul_precision(level as i32) };
    Ok(())
}

/// `torch.get_float32_matmul_precision()`.
pub fn float32_matmul_precision() -> &'static str {
    // SAFETY: reads a value in libtorch's global context.
    let level = unsafe { lthost_matmul_precision() };
    MATMUL_PRECISIONS.get(level as usize).copied().unwrap_or("highest")
}

/// `t.grad = grad` (None clears it); torch's checks: same dtype, device and size.
pub fn set_grad(t: &tch::Tensor, grad: Option<&tch::Tensor>) -> OpResult<()> {
    let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
    let g = grad.map_or(std::ptr::null(), |g| g.as_ptr().cast());
    // SAFETY: live tensors (or null) for the call; the grad slot belongs to `t`'s impl.
    let rc = unsafe { lthost_set_grad(t.as_ptr().cast(), g, &mut err) };
    if rc != 0 {
        return Err(OpError::new("grad", take_error(err)));
    }
    Ok(())
}

/// `t.backward(gradient, retain_graph, create_graph)`: accumulates into the leaves' `.grad`.
pub fn backward(
    t: &tch::Tensor,
    gradient: Option<&tch::Tensor>,
    retain_graph: bool,
    create_graph: bool,
) -> OpResult<()> {
    let mut err: *mut std::ffi::c_char = std::ptr::null_mut();
    let g = gradient.map_or(std::ptr::null(), |g| g.as_ptr().cast());
    // SAFETY: live tensors (or null) for the call.
    let rc =
        unsafe { lthost_backward(t.as_ptr().cast(), g, i32::from(retain_graph), i32::from(create_graph), &mut err) };
    if rc != 0 {
        return Err(OpError::new("backward", take_error(err)));
    }
    Ok(())
}

/// torch.set_grad_enabled on this thread; returns the mode it replaces.
pub fn set_grad_enabled(enabled: bool) -> bool {
    // SAFETY: flips a thread-local flag.
    unsafe { lthost_grad_set_enabled(i32::from(enabled)) != 0 }
}

/// torch.is_grad_enabled on this thread.
pub fn grad_enabled() -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { lthost_grad_enabled() != 0 }
}

/// `torch.inference_mode()` for as long as the guard lives (on this thread): no autograd
/// graph, no version counters. Tensors made under it cannot join autograd later.
pub struct InferenceMode {
    guard: *mut std::ffi::c_void,
}

impl InferenceMode {
    pub fn enter() -> Self {
        Self::set(true)
    }

    /// `torch.inference_mode(enabled)`: `false` leaves inference mode inside an outer one.
    pub fn set(enabled: bool) -> Self {
        // SAFETY: allocates a c10::InferenceMode RAII guard, freed in Drop on this thread.
        InferenceMode { guard: unsafe { lthost_inference_mode_enter(i32::from(enabled)) } }
    }
}

impl Drop for InferenceMode {
    fn drop(&mut self) {
        // SAFETY: `guard` came from `lthost_inference_mode_enter` and is freed once.
        unsafe { lthost_inference_mode_exit(self.guard) }
    }
}

/// A CPU generator of its own, seeded like `torch.Generator().manual_seed(seed)`: a
/// DataLoader worker's (torch seeds each worker process with `base_seed + worker_id`).
pub struct Generator {
    ptr: *mut std::ffi::c_void,
}

// SAFETY: an at::Generator may move between threads; it has its own mutex, and lthost uses
// each one from one thread at a time (`&mut self`).
unsafe impl Send for Generator {}

/// What a [`Generator`] draws, as the torch function of the same name on a fresh tensor.
#[derive(Debug, Clone, Copy)]
pub enum Draw {
    /// float32 in [0, 1).
    Rand,
    /// float32, standard normal.
    Randn,
    /// int64 in [low, high).
    Randint(i64, i64),
    /// int64, a permutation of 0..numel.
    Randperm,
}

impl Generator {
    /// The `at::Generator*` behind it, for a shim call that draws from it.
    pub(crate) fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        self.ptr
    }

    pub fn seeded(seed: u64) -> OpResult<Generator> {
        // SAFETY: returns a heap-allocated at::Generator (null on failure), freed in Drop.
        let ptr = unsafe { lthost_generator_new(seed) };
        if ptr.is_null() {
            return Err(OpError::new("manual_seed", format!("creating a CPU generator seeded {seed} failed")));
        }
        Ok(Generator { ptr })
    }

    /// A generator in the CPU generator state `state` (from [`cpu_rng_state`]): it draws
    /// what the run's generator drew from there.
    pub fn from_state(state: &[u8]) -> OpResult<Generator> {
        // SAFETY: libtorch copies `len` bytes from `data`; returns a heap-allocated
        // at::Generator (null on failure), freed in Drop.
        let ptr = unsafe { lthost_generator_from_state(state.as_ptr(), state.len() as i64) };
        if ptr.is_null() {
            return Err(OpError::new(
                "set_rng_state",
                format!("libtorch refused a CPU generator state of {} bytes", state.len()),
            ));
        }
        Ok(Generator { ptr })
    }

    /// Its state, as [`cpu_rng_state`] gives the run's generator's.
    pub fn state(&mut self) -> OpResult<Vec<u8>> {
        let ptr = self.ptr;
        // SAFETY: `ptr` is this live generator; libtorch copies at most `capacity` bytes.
        read_state(|out, capacity| unsafe { lthost_generator_state(ptr, out, capacity) }, "worker")
    }

    /// Puts it in `state` (from [`Generator::state`] or [`cpu_rng_state`]).
    pub fn set_state(&mut self, state: &[u8]) -> OpResult<()> {
        // SAFETY: libtorch copies `len` bytes from `data`, which `state` provides.
        let r = unsafe { lthost_generator_set_state(self.ptr, state.as_ptr(), state.len() as i64) };
        if r != 0 {
            return Err(OpError::new(
                "set_rng_state",
                format!("libtorch refused a CPU generator state of {} bytes", state.len()),
            ));
        }
        Ok(())
    }

    /// A new CPU tensor of `shape` drawn from this generator.
    pub fn draw(&mut self, what: Draw, shape: &[i64]) -> OpResult<tch::Tensor> {
        let (kind, code, low, high) = match what {
            Draw::Rand => (tch::Kind::Float, 0, 0, 0),
            Draw::Randn => (tch::Kind::Float, 1, 0, 0),
            Draw::Randint(l, h) => (tch::Kind::Int64, 2, l, h),
            Draw::Randperm => (tch::Kind::Int64, 3, 0, 0),
        };
        if let Draw::Randint(l, h) = what {
            if l >= h {
                return Err(OpError::new("randint", format!("low {l} must be below high {h}")));
            }
        }
        let t = tch::Tensor::f_empty(shape, (kind, tch::Device::Cpu)).map_err(|e| OpError::torch("generator", e))?;
        let n = t.numel() as i64;
        if n == 0 {
            return Ok(t);
        }
        // SAFETY: `t` is a fresh contiguous CPU tensor of `n` elements of the dtype libtorch
        // fills for `code`; it outlives the call.
        let r = unsafe { lthost_generator_fill(self.ptr, code, t.data_ptr(), n, low, high) };
        if r != 0 {
            return Err(OpError::new("generator", format!("drawing {what:?} of shape {shape:?} failed")));
        }
        Ok(t)
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `lthost_generator_new` and is freed once.
        unsafe { lthost_generator_free(self.ptr) }
    }
}

/// What evaluation runs under: inference mode (Lightning's default `inference_mode=True`)
/// or plain `no_grad`.
pub enum EvalGuard {
    Inference(InferenceMode),
    NoGrad(tch::NoGradGuard),
}

pub fn eval_guard(inference: bool) -> EvalGuard {
    if inference {
        EvalGuard::Inference(InferenceMode::enter())
    } else {
        EvalGuard::NoGrad(tch::no_grad_guard())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_mode_turns_autograd_off() {
        let _rng = global_rng_lock();
        let w = tch::Tensor::ones([2], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        {
            let _g = InferenceMode::enter();
            let y = &w * 2.0;
            assert!(!y.requires_grad());
            assert!(y.is_inference());
        }
        assert!((&w * 2.0).requires_grad());
        let state = cpu_rng_state().unwrap();
        let a = tch::Tensor::rand([4], (tch::Kind::Float, tch::Device::Cpu));
        set_cpu_rng_state(&state).unwrap();
        let b = tch::Tensor::rand([4], (tch::Kind::Float, tch::Device::Cpu));
        assert!(a.equal(&b));
        assert!(set_cpu_rng_state(&[1, 2, 3]).is_err());
        if !tch::Cuda::is_available() {
            assert!(cuda_rng_state(0).is_err(), "no CUDA device: a clear error, no crash");
        } else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "note: check skipped on this machine: the no-CUDA generator-state error (a GPU is present; tools/gpu-check.sh covers CUDA)"
            );
        }
        // A worker's generator draws what torch draws after manual_seed(seed).
        let mut g = Generator::seeded(7).unwrap();
        tch::manual_seed(7);
        assert!(g
            .draw(Draw::Rand, &[3, 5])
            .unwrap()
            .equal(&tch::Tensor::rand([3, 5], (tch::Kind::Float, tch::Device::Cpu))));
        assert!(g
            .draw(Draw::Randn, &[40])
            .unwrap()
            .equal(&tch::Tensor::randn([40], (tch::Kind::Float, tch::Device::Cpu))));
        assert!(g.draw(Draw::Randint(-3, 9), &[17]).unwrap().equal(&tch::Tensor::randint_low(
            -3,
            9,
            [17],
            (tch::Kind::Int64, tch::Device::Cpu)
        )));
        assert!(g
            .draw(Draw::Randperm, &[20])
            .unwrap()
            .equal(&tch::Tensor::randperm(20, (tch::Kind::Int64, tch::Device::Cpu))));
        assert!(g.draw(Draw::Randint(2, 2), &[1]).is_err());
        set_deterministic(true);
        assert!(deterministic());
        set_deterministic(false);
        assert!(!deterministic());
    }
}
