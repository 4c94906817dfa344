// Two libtorch switches that tch 0.26 does not expose: deterministic algorithms
// (torch.use_deterministic_algorithms) and inference mode (torch.inference_mode), the
// latter as a heap-allocated RAII guard the Rust side owns. Neither throws.
#include <ATen/Context.h>
#include <ATen/ScalarOps.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/add.h>
#include <ATen/ops/addcdiv.h>
#include <ATen/ops/addcmul.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/randperm.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <cstring>
#include <mutex>

extern "C" {

void lthost_set_deterministic(int enabled) {
  at::globalContext().setDeterministicAlgorithms(enabled != 0, /*warn_only=*/false);
}

int lthost_deterministic() { return at::globalContext().deterministicAlgorithms() ? 1 : 0; }

// torch.cuda.set_device(index), through the CUDA device guard libtorch_cuda registers (lthost
// does not link it): 0, or -1 with the message in `err` (no CUDA in this process).
int lthost_set_cuda_device(int index, char** err) {
  try {
    c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)
        ->setDevice(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index)));
    return 0;
  } catch (const std::exception& e) {
    *err = strdup(e.what());
    return -1;
  }
}

// torch.set_float32_matmul_precision / get_float32_matmul_precision: 0 "highest", 1 "high",
// 2 "medium" (the caller checks the name).
void lthost_set_matmul_precision(int level) {
  at::globalContext().setFloat32MatmulPrecision(level == 2 ? "medium" : level == 1 ? "high" : "highest");
}
int lthost_matmul_precision() {
  switch (at::globalContext().float32MatmulPrecision()) {
    case at::Float32MatmulPrecision::MEDIUM:
      return 2;
    case at::Float32MatmulPrecision::HIGH:
      return 1;
    default:
      return 0;
  }
}

void* lthost_inference_mode_enter(int enabled) { return new c10::InferenceMode(enabled != 0); }

void lthost_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }

// torch.set_grad_enabled (returns the mode it replaces) and torch.is_grad_enabled.
int lthost_grad_set_enabled(int enabled) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(enabled != 0);
  return prev ? 1 : 0;
}
int lthost_grad_enabled() { return c10::GradMode::is_enabled() ? 1 : 0; }

// Generator states (torch.get_rng_state / torch.cuda.get_rng_state): size, copy out,
// restore. -1 on failure (no such device, a state of the wrong size or version).
static int64_t copy_state(at::Generator gen, uint8_t* out, int64_t capacity) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto state = gen.get_state();
  int64_t n = state.numel();
  if (out != nullptr && capacity >= n) std::memcpy(out, state.data_ptr(), n);
  return n;
}

static void restore_state(at::Generator gen, const uint8_t* data, int64_t len) {
  auto state = at::empty({len}, at::kByte);
  std::memcpy(state.data_ptr(), data, len);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// The CUDA generators go through the device-generic API: no CUDA header is needed.
static at::Generator generator(int64_t cuda_index) {
  if (cuda_index < 0) return at::detail::getDefaultCPUGenerator();
  return at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, cuda_index));
}

// `cuda_index` < 0: the CPU generator.
int64_t lthost_rng_state(int64_t cuda_index, uint8_t* out, int64_t capacity) {
  try {
    return copy_state(generator(cuda_index), out, capacity);
  } catch (...) {
    return -1;
  }
}

int64_t lthost_set_rng_state(int64_t cuda_index, const uint8_t* data, int64_t len) {
  try {
    restore_state(generator(cuda_index), data, len);
    return 0;
  } catch (...) {
    return -1;
  }
}


// torch.utils.data's draws, op for op: `torch.empty((), dtype=torch.int64).random_()` on
// the default CPU generator (a DataLoader iterator's base seed, RandomSampler's seed), and
// `torch.randperm(n, generator=g)` with a fresh generator seeded `seed` (RandomSampler,
// DistributedSampler). 0 on success, -1 on failure.
int64_t lthost_draw_seed(int64_t* out) {
  try {
    *out = at::empty({}, at::kLong).random_().item<int64_t>();
    return 0;
  } catch (...) {
    return -1;
  }
}

int64_t lthost_randperm_seeded(int64_t n, int64_t seed, int64_t* out) {
  try {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
    auto perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
    std::memcpy(out, perm.data_ptr<int64_t>(), n * sizeof(int64_t));
    return 0;
  } catch (...) {
    return -1;
  }
}


// A CPU generator of its own (a DataLoader worker's: torch seeds each worker process's
// default generator with base_seed + worker_id; lthost's workers are threads, so each
// gets one of these instead of sharing the run's).
void* lthost_generator_new(uint64_t seed) {
  try {
    return new at::Generator(at::make_generator<at::CPUGeneratorImpl>(seed));
  } catch (...) {
    return nullptr;
  }
}

// A CPU generator in the state `torch.get_rng_state()` gave (null on failure or a bad state).
void* lthost_generator_from_state(const uint8_t* data, int64_t len) {
  try {
    auto* g = new at::Generator(at::make_generator<at::CPUGeneratorImpl>());
    try {
      restore_state(*g, data, len);
    } catch (...) {
      delete g;
      return nullptr;
    }
    return g;
  } catch (...) {
    return nullptr;
  }
}

void lthost_generator_free(void* gen) { delete static_cast<at::Generator*>(gen); }

// A generator's state, as lthost_rng_state gives the default one's (-1 on failure).
int64_t lthost_generator_state(void* gen, uint8_t* out, int64_t capacity) {
  try {
    return copy_state(*static_cast<at::Generator*>(gen), out, capacity);
  } catch (...) {
    return -1;
  }
}

// Puts a generator in state `data` (0; -1 when libtorch refuses it).
int64_t lthost_generator_set_state(void* gen, const uint8_t* data, int64_t len) {
  try {
    restore_state(*static_cast<at::Generator*>(gen), data, len);
    return 0;
  } catch (...) {
    return -1;
  }
}

// Fills `n` contiguous elements at `data` from `gen` as torch.rand / randn / randint /
// randperm do on a fresh tensor: kind 0 uniform_(0, 1) and 1 normal_(0, 1) on float32,
// 2 random_(low, high) and 3 randperm(n) on int64. 0 on success, -1 on failure.
int64_t lthost_generator_fill(void* gen, int64_t kind, void* data, int64_t n, int64_t low, int64_t high) {
  try {
    auto& g = *static_cast<at::Generator*>(gen);
    auto dtype = kind < 2 ? at::kFloat : at::kLong;
    auto t = at::from_blob(data, {n}, at::TensorOptions().dtype(dtype));
    switch (kind) {
      case 0: t.uniform_(0, 1, g); break;
      case 1: t.normal_(0, 1, g); break;
      case 2: t.random_(low, high, g); break;
      case 3: t.copy_(at::randperm(n, g, at::TensorOptions().dtype(at::kLong))); break;
      default: return -1;
    }
    return 0;
  } catch (...) {
    return -1;
  }
}


// torch's `a.add(b, alpha=alpha)`: one fused kernel (a + alpha * b rounded once), which tch
// does not expose; optimizers need it to round as torch.optim does. Returns a new tensor, or
// null with the error's text in `err` (a malloc'd string the caller frees).
void* lthost_add_alpha(const at::Tensor* a, const at::Tensor* b, double alpha, char** err) {
  try {
    return new at::Tensor(a->add(*b, alpha));
  } catch (const std::exception& e) {
    *err = strdup(e.what());
    return nullptr;
  }
}

// In place, `a.add_(b, alpha=alpha)` (a parameter or state buffer keeps its storage). 0 on
// success; -1 with the error's text in `err` (malloc'd).
int lthost_add_alpha_(const at::Tensor* a, const at::Tensor* b, double alpha, char** err) {
  try {
    a->add_(*b, alpha);
    return 0;
  } catch (const std::exception& e) {
    *err = strdup(e.what());
    return -1;
  }
}

// torch's in-place `t.mul_(s)` from Python: the number as a wrapped-number tensor, the second
// operand of aten::mul_.Tensor, which a reduced-precision kernel reads in float (aten::mul_.Scalar,
// tch's `f_mul_scalar_`, rounds it to the tensor's dtype first: bfloat16 0.95 is 0.94921875).
// 0 on success; -1 + err.
int lthost_mul_number_(const at::Tensor* t, double s, char** err) {
  try {
    t->mul_(at::native::wrapped_scalar_tensor(c10::Scalar(s)));
    return 0;
  } catch (const std::exception& e) {
    *err = strdup(e.what());
    return -1;
  }
}

// torch's `s.addcmul(t1, t2, value=v)` (`div` 0) or `s.addcdiv(t1, t2, value=v)` (`div` 1), in
// place into `s` when `inplace`: one kernel, which for reduced-precision tensors computes in
// float and rounds once. A new handle (to `s` itself in place), or null + err.
void* lthost_addc(const at::Tensor* s, const at::Tensor* t1, const at::Tensor* t2, double value, int div,
                  int inplace, char** err) {
  try {
    if (inplace != 0) {
      if (div != 0) {
        s->addcdiv_(*t1, *t2, value);
      } else {
        s->addcmul_(*t1, *t2, value);
      }
      return new at::Tensor(*s);
    }
    return new at::Tensor(div != 0 ? s->addcdiv(*t1, *t2, value) : s->addcmul(*t1, *t2, value));
  } catch (const std::exception& e) {
    *err = strdup(e.what());
    return nullptr;
  }
}

// `t.grad = g` (g null: `t.grad = None`), with the checks torch's setter makes. 0 or -1 + err.
int lthost_set_grad(const at::Tensor* t, const at::Tensor* g, char** err) {
  try {
    if (g == nullptr) {
      t->mutable_grad() = at::Tensor();
      return 0;
    }
    TORCH_CHECK(g->scalar_type() == t->scalar_type(), "assigned grad has data of a different type");
    TORCH_CHECK(g->device() == t->device(), "assigned grad has data located on a different device");
    TORCH_CHECK(g->sizes() == t->sizes(), "assigned grad has data of a different size");
    t->mutable_grad() = *g;
    return 0;
  } catch (const std::exception& e) {
    *err = strdup(e.what());
    return -1;
  }
}

// `t.backward(gradient, retain_graph, create_graph)` (gradient null: none). 0 or -1 + err.
int lthost_backward(const at::Tensor* t, const at::Tensor* gradient, int retain_graph, int create_graph, char** err) {
  try {
    t->backward(gradient == nullptr ? at::Tensor() : *gradient, retain_graph != 0, create_graph != 0);
    return 0;
  } catch (const std::exception& e) {
    *err = strdup(e.what());
    return -1;
  }
}
}
