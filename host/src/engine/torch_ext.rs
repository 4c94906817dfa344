//! libtorch switches tch does not expose (see `host/csrc/torch_ext.cpp`).

extern "C" {
    fn lthost_set_deterministic(enabled: i32);
    fn lthost_deterministic() -> i32;
    fn lthost_inference_mode_enter() -> *mut std::ffi::c_void;
    fn lthost_inference_mode_exit(guard: *mut std::ffi::c_void);
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

/// `torch.inference_mode()` for as long as the guard lives (on this thread): no autograd
/// graph, no version counters. Tensors made under it cannot join autograd later.
pub struct InferenceMode {
    guard: *mut std::ffi::c_void,
}

impl InferenceMode {
    pub fn enter() -> Self {
        // SAFETY: allocates a c10::InferenceMode RAII guard, freed in Drop on this thread.
        InferenceMode { guard: unsafe { lthost_inference_mode_enter() } }
    }
}

impl Drop for InferenceMode {
    fn drop(&mut self) {
        // SAFETY: `guard` came from `lthost_inference_mode_enter` and is freed once.
        unsafe { lthost_inference_mode_exit(self.guard) }
    }
}

/// What evaluation runs under: inference mode (Lightning's default `inference_mode=True`)
/// or plain `no_grad`.
pub enum EvalGuard {
    Inference(InferenceMode),
    NoGrad(tch::NoGradGuard),
}

pub fn eval_guard(inference: bool) -> EvalGuard {
    if inference { EvalGuard::Inference(InferenceMode::enter()) } else { EvalGuard::NoGrad(tch::no_grad_guard()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_mode_turns_autograd_off() {
        let w = tch::Tensor::ones([2], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        {
            let _g = InferenceMode::enter();
            let y = &w * 2.0;
            assert!(!y.requires_grad());
            assert!(y.is_inference());
        }
        assert!((&w * 2.0).requires_grad());
        set_deterministic(true);
        assert!(deterministic());
        set_deterministic(false);
        assert!(!deterministic());
    }
}
