// Two libtorch switches that tch 0.26 does not expose: deterministic algorithms
// (torch.use_deterministic_algorithms) and inference mode (torch.inference_mode), the
// latter as a heap-allocated RAII guard the Rust side owns. Neither throws.
#include <ATen/Context.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/InferenceMode.h>
#include <cstring>
#include <mutex>

extern "C" {

void lthost_set_deterministic(int enabled) {
  at::globalContext().setDeterministicAlgorithms(enabled != 0, /*warn_only=*/false);
}

int lthost_deterministic() { return at::globalContext().deterministicAlgorithms() ? 1 : 0; }

void* lthost_inference_mode_enter() { return new c10::InferenceMode(true); }

void lthost_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }

// The CPU generator's state (torch.get_rng_state()): size, copy out, restore.
// Returns -1 on failure (a state of the wrong size or version).
int64_t lthost_cpu_rng_state(uint8_t* out, int64_t capacity) {
  try {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    auto state = gen.get_state();
    int64_t n = state.numel();
    if (out != nullptr && capacity >= n) std::memcpy(out, state.data_ptr(), n);
    return n;
  } catch (...) {
    return -1;
  }
}

// A CUDA device's generator state (torch.cuda.get_rng_state(i)), through the device-generic
// API so that no CUDA header is needed. -1 when there is no such device.
int64_t lthost_cuda_rng_state(int64_t index, uint8_t* out, int64_t capacity) {
  try {
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, index));
    std::lock_guard<std::mutex> lock(gen.mutex());
    auto state = gen.get_state();
    int64_t n = state.numel();
    if (out != nullptr && capacity >= n) std::memcpy(out, state.data_ptr(), n);
    return n;
  } catch (...) {
    return -1;
  }
}

int64_t lthost_set_cuda_rng_state(int64_t index, const uint8_t* data, int64_t len) {
  try {
    auto state = at::empty({len}, at::kByte);
    std::memcpy(state.data_ptr(), data, len);
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, index));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
    return 0;
  } catch (...) {
    return -1;
  }
}

int64_t lthost_set_cpu_rng_state(const uint8_t* data, int64_t len) {
  try {
    auto state = at::empty({len}, at::kByte);
    std::memcpy(state.data_ptr(), data, len);
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
    return 0;
  } catch (...) {
    return -1;
  }
}

}
