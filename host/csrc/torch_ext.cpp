// Two libtorch switches that tch 0.26 does not expose: deterministic algorithms
// (torch.use_deterministic_algorithms) and inference mode (torch.inference_mode), the
// latter as a heap-allocated RAII guard the Rust side owns. Neither throws.
#include <ATen/Context.h>
#include <c10/core/InferenceMode.h>

extern "C" {

void lthost_set_deterministic(int enabled) {
  at::globalContext().setDeterministicAlgorithms(enabled != 0, /*warn_only=*/false);
}

int lthost_deterministic() { return at::globalContext().deterministicAlgorithms() ? 1 : 0; }

void* lthost_inference_mode_enter() { return new c10::InferenceMode(true); }

void lthost_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }

}
