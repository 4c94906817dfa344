// torch's NCCL process-group backend for the host's DDP strategy on CUDA: one C function
// that builds a `c10d::ProcessGroupNCCL` as `init_process_group("nccl", device_id=...)` does.
//
// This file is its own shared object (liblthost_nccl.so), not part of lthost_torch_ext:
// `lthost` is linked without libtorch_cuda (connectors/cuda_loader.rs preloads it when a run
// may use CUDA), and ProcessGroupNCCL lives there. The host loads this object only in a DDP
// run on CUDA, after libtorch_cuda is in the process (host/src/distributed/nccl.rs), and
// hands the backend to the process group built by csrc/distributed.cpp.
#define USE_C10D_NCCL 1
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <cstring>

extern "C" {

// A ProcessGroupNCCL over `store` (borrowed; the caller's `<group>/cuda/` prefix store) for
// `rank` of `size` on CUDA device `device`, which becomes this thread's current device (as
// Lightning's `torch.cuda.set_device`). Options as torch's defaults for "nccl": normal-priority
// streams, the group's timeout and name, every global rank in the group. The communicator is
// made now (`eagerConnectSingleDevice`, torch's `device_id=`), so a bad device or a peer that
// never comes fails here. Returns the backend with one reference for the caller, or null with
// torch's message in `err` (strdup'd).
void* lthost_nccl_backend(void* store, int rank, int size, int64_t timeout_ms, int device, const char* group_name,
                          char** err) {
  try {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto s = c10::intrusive_ptr<c10d::Store>::unsafe_reclaim_from_nonowning(static_cast<c10d::Store*>(store));
    auto options = c10d::ProcessGroupNCCL::Options::create(/*is_high_priority_stream=*/false);
    options->timeout = std::chrono::milliseconds(timeout_ms);
    options->group_name = group_name;
    for (int r = 0; r < size; ++r) options->global_ranks_in_group.push_back(static_cast<uint64_t>(r));
    auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(s, rank, size, options);
    backend->setSequenceNumberForGroup();
    at::Device bound(at::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device));
    backend->setBoundDeviceId(bound);
    backend->eagerConnectSingleDevice(bound);
    c10::intrusive_ptr<c10d::Backend> base = backend;
    return base.release();
  } catch (const std::exception& e) {
    *err = strdup(e.what());
  } catch (...) {
    *err = strdup("ProcessGroupNCCL failed with an exception that is not a std::exception");
  }
  return nullptr;
}

// NCCL's version as libtorch_cuda was built against it (major * 10000 + minor * 100 + patch
// for NCCL >= 2.9), for the run's banner and the GPU check.
int lthost_nccl_version() { return NCCL_VERSION_CODE; }
}
