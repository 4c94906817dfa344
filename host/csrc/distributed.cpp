// torch's distributed engine (c10d) for the host's DDP strategy (host/src/distributed/):
// the TCPStore rendezvous, a ProcessGroup with the Gloo backend as
// `torch.distributed.init_process_group("gloo")` builds it, the collectives the strategy
// needs, and torch's `c10d::Reducer`, the bucketed gradient all-reduce that
// DistributedDataParallel runs during backward. Everything here is libtorch's own code,
// exported by libtorch_cpu; Gloo's headers are declared (csrc/gloo_decl).
//
// Handles are heap boxes the Rust side owns and frees; every call catches what c10d throws
// and returns it as a strdup'd message (0 / -1, or null) so nothing unwinds into Rust.
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/logger.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <limits>

namespace {

struct Store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct Group {
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  // `default_pg/<name>/`: the backends' stores hang below it (`cpu/`, `cuda/`).
  c10::intrusive_ptr<c10d::Store> store;
  std::string name;
  // The CUDA backend, when the group has one of its own (NCCL).
  c10::intrusive_ptr<c10d::Backend> cuda;
  // `lthost::sync_batch_norm` syncs over this group (csrc/sync_batch_norm.cpp).
  bool syncs_batch_norm = false;
};

// The NCCL shim's constructor (csrc/nccl_backend.cpp, `lthost_nccl_backend`).
using MakeCudaBackend = void* (*)(void* store, int rank, int size, int64_t timeout_ms, int device,
                                  const char* group_name, char** err);

struct Reducer {
  std::shared_ptr<c10d::Reducer> reducer;
  // DistributedDataParallel's `dist.Logger(reducer)`: the Reducer reports through it (with
  // find_unused_parameters, `search_unused_parameters` calls it unchecked). It holds the
  // reducer, so it goes first.
  std::shared_ptr<c10d::Logger> logger;
};

template <class F>
int guarded(char** err, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    *err = strdup(e.what());
    return -1;
  } catch (...) {
    *err = strdup("c10d failed with an exception that is not a std::exception");
    return -1;
  }
}

std::vector<at::Tensor> tensors(const at::Tensor* const* ts, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*ts[i]);
  return out;
}

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0: return c10d::ReduceOp::SUM;
    case 1: return c10d::ReduceOp::PRODUCT;
    case 2: return c10d::ReduceOp::MIN;
    case 3: return c10d::ReduceOp::MAX;
    default: TORCH_CHECK(false, "unknown reduce op ", op);
  }
}

}  // namespace

void lthost_sync_batch_norm_use(c10::intrusive_ptr<c10d::ProcessGroup> pg);

extern "C" {

// `TCPStore(host, port, world_size, is_master, timeout, wait_for_workers, multi_tenant)`, as
// torch's env:// rendezvous makes it (a client of torchrun's agent store: is_master false).
void* lthost_dist_tcp_store(const char* host, int port, int world_size, int is_server, int wait_workers,
                            int multi_tenant, int64_t timeout_ms, char** err) {
  Store* out = nullptr;
  guarded(err, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_server != 0;
    opts.numWorkers = static_cast<std::size_t>(world_size);
    opts.waitWorkers = wait_workers != 0;
    opts.multiTenant = multi_tenant != 0;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    store->setTimeout(opts.timeout);
    out = new Store{store};
  });
  return out;
}

void lthost_dist_store_free(void* store) { delete static_cast<Store*>(store); }

// `store.set(key, value)`, waiting at most `timeout_ms` from now on for the store.
int lthost_dist_store_set(void* store, const char* key, const char* value, int64_t timeout_ms, char** err) {
  return guarded(err, [&] {
    auto& s = static_cast<Store*>(store)->store;
    s->setTimeout(std::chrono::milliseconds(timeout_ms));
    std::string v(value);
    s->set(key, std::vector<uint8_t>(v.begin(), v.end()));
  });
}

// `store.check([key])`: 1 when the key is set, 0 when not.
int lthost_dist_store_check(void* store, const char* key, int* present, char** err) {
  return guarded(err, [&] { *present = static_cast<Store*>(store)->store->check({key}) ? 1 : 0; });
}

// The default process group as `init_process_group("gloo")` builds it: a ProcessGroup over
// `default_pg` + `<group_name>/` of the store, its CPU backend a ProcessGroupGloo (under a
// further `cpu/`) on the default device (the host name's address, else loopback;
// `GLOO_SOCKET_IFNAME` picks an interface), so the store's keys are torch's own.
void* lthost_dist_gloo_group(void* store, int rank, int size, int64_t timeout_ms, const char* group_name,
                             const char* ifname, char** err) {
  Group* out = nullptr;
  guarded(err, [&] {
    auto base = static_cast<Store*>(store)->store;
    auto world = c10::make_intrusive<c10d::PrefixStore>("default_pg", base);
    auto group = c10::make_intrusive<c10d::PrefixStore>(std::string(group_name) + "/", world);
    auto cpu = c10::make_intrusive<c10d::PrefixStore>("cpu/", group);
    auto options = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(timeout_ms));
    if (ifname != nullptr && ifname[0] != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = static_cast<int>(options->devices.size()) * 2;
    auto pg = c10::make_intrusive<c10d::ProcessGroup>(group, rank, size);
    pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    c10::intrusive_ptr<c10d::Backend> backend = c10::make_intrusive<c10d::ProcessGroupGloo>(cpu, rank, size, options);
    pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, backend);
    pg->setGroupName(group_name);
    pg->setGroupDesc("default_pg");
    out = new Group{pg, group, group_name, {}, false};
  });
  return out;
}

// CUDA tensors' collectives for the group, as `init_process_group("cpu:gloo,cuda:nccl")`:
// with `make` (the NCCL shim's constructor, loaded by the host after libtorch_cuda) a
// ProcessGroupNCCL over the group's `cuda/` store on CUDA device `device`; without it the
// group's Gloo backend takes CUDA tensors too (`process_group_backend="gloo"` on a GPU, as
// torch's Gloo does: through host copies). The default backend stays Gloo on purpose (torch
// would make NCCL the default): barriers and the host's own scalars stay on the CPU.
int lthost_dist_group_add_cuda(void* group, MakeCudaBackend make, int device, int64_t timeout_ms, char** err) {
  return guarded(err, [&] {
    auto* g = static_cast<Group*>(group);
    if (make == nullptr) {
      auto gloo = g->pg->getBackend(c10::DeviceType::CPU);
      g->pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::GLOO, gloo);
      return;
    }
    auto store = c10::make_intrusive<c10d::PrefixStore>("cuda/", g->store);
    char* made_err = nullptr;
    void* raw = make(static_cast<c10d::Store*>(store.get()), g->pg->getRank(), g->pg->getSize(), timeout_ms, device,
                     g->name.c_str(), &made_err);
    if (raw == nullptr) {
      std::string message = made_err != nullptr ? made_err : "ProcessGroupNCCL could not be made";
      free(made_err);
      throw std::runtime_error(message);
    }
    g->cuda = c10::intrusive_ptr<c10d::Backend>::reclaim(static_cast<c10d::Backend*>(raw));
    g->pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, g->cuda);
    // As torch, the name and description once every backend is registered (they reach each).
    g->pg->setGroupName(g->name);
    g->pg->setGroupDesc("default_pg");
  });
}

// `sync_batchnorm`: BatchNorm layers in training sync their statistics over this group.
void lthost_dist_sync_batch_norm(void* group) {
  auto* g = static_cast<Group*>(group);
  lthost_sync_batch_norm_use(g->pg);
  g->syncs_batch_norm = true;
}

// Frees the group. Its NCCL backend is aborted first (ncclCommAbort, never waiting on a peer
// that may be gone), as torch's destructor would do after warning that
// `destroy_process_group()` was not called.
void lthost_dist_group_free(void* group) {
  auto* g = static_cast<Group*>(group);
  if (g->syncs_batch_norm) lthost_sync_batch_norm_use({});
  if (g->cuda) {
    try {
      g->cuda->abort();
    } catch (...) {
    }
  }
  delete g;
}

// `dist.barrier()`.
int lthost_dist_barrier(void* group, char** err) {
  return guarded(err, [&] { static_cast<Group*>(group)->pg->barrier()->wait(); });
}

// `dist.broadcast(t, src=root)`, in place.
int lthost_dist_broadcast(void* group, const at::Tensor* t, int root, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    static_cast<Group*>(group)->pg->broadcast(ts, opts)->wait();
  });
}

// `dist.all_reduce(t, op)`, in place (op: 0 sum, 1 product, 2 min, 3 max).
int lthost_dist_all_reduce(void* group, const at::Tensor* t, int op, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> ts{*t};
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce_op(op);
    static_cast<Group*>(group)->pg->allreduce(ts, opts)->wait();
  });
}

// DDP's `_broadcast_coalesced(tensors, buffer_size, src)`: rank `root`'s values into every
// rank's tensors, flattened into buckets of at most `buffer_size` bytes.
int lthost_dist_broadcast_coalesced(void* group, const at::Tensor* const* ts, size_t n, size_t buffer_size, int root,
                                    char** err) {
  return guarded(err, [&] {
    c10d::broadcast_coalesced(static_cast<Group*>(group)->pg, tensors(ts, n), buffer_size, root);
  });
}

// DistributedDataParallel's `_verify_param_shape_across_processes`: every rank has as many
// parameters as every other (checked on all ranks), with rank 0's sizes and strides (checked
// where they differ).
int lthost_dist_verify_params(void* group, const at::Tensor* const* params, size_t n, char** err) {
  return guarded(err, [&] {
    c10d::verify_params_across_processes(static_cast<Group*>(group)->pg, tensors(params, n), std::nullopt);
  });
}

// DistributedDataParallel's Reducer over `params` (those requiring grad, in the module's
// order), bucketed as DDP's constructor does without `find_unused_parameters`: one bucket per
// dtype (the limit `sys.maxsize`), reversed, until the first backward's gradient order
// rebuilds them with the limits [first_bucket_bytes, bucket_bytes].
void* lthost_dist_reducer_new(void* group, const at::Tensor* const* params, size_t n, const char* const* names,
                              int64_t bucket_bytes, int64_t first_bucket_bytes, int find_unused, char** err) {
  Reducer* out = nullptr;
  guarded(err, [&] {
    auto ps = tensors(params, n);
    std::vector<bool> sparse(n, false);
    std::vector<size_t> first_limits{find_unused != 0 ? static_cast<size_t>(first_bucket_bytes)
                                                      : static_cast<size_t>(std::numeric_limits<int64_t>::max())};
    if (find_unused != 0) first_limits.push_back(static_cast<size_t>(bucket_bytes));
    auto indices = std::get<0>(c10d::compute_bucket_assignment_by_size(ps, first_limits, sparse));
    std::reverse(indices.begin(), indices.end());
    std::unordered_map<size_t, std::string> param_names;
    for (size_t i = 0; i < n; ++i) param_names[i] = names[i];
    auto reducer = std::make_shared<c10d::Reducer>(std::move(ps), std::move(indices), static_cast<Group*>(group)->pg,
                                                   std::move(sparse), bucket_bytes, find_unused != 0,
                                                   /*gradient_as_bucket_view=*/false, std::move(param_names),
                                                   first_bucket_bytes, /*skip_all_reduce_unused_params=*/false,
                                                   /*use_python_reducer=*/false,
                                                   /*bucket_bytes_cap_list=*/std::vector<int64_t>{});
    auto logger = std::make_shared<c10d::Logger>(reducer);
    reducer->set_logger(logger);
    out = new Reducer{std::move(reducer), std::move(logger)};
  });
  return out;
}

int lthost_dist_reducer_free(void* reducer, char** err) {
  return guarded(err, [&] { delete static_cast<Reducer*>(reducer); });
}

// DDP's `_pre_forward` on the reducer with grad enabled: the forward's start when gradients
// are synced (not inside `no_sync`), then, either way, the bucket rebuild by the first
// backward's gradient order.
int lthost_dist_reducer_pre_forward(void* reducer, int sync, char** err) {
  return guarded(err, [&] {
    auto& r = *static_cast<Reducer*>(reducer)->reducer;
    if (sync != 0) r.prepare_for_forward();
    r.rebuild_buckets();
  });
}

// DDP's `_post_forward`: expect this backward's gradient hooks (`outputs` searched for unused
// parameters when the reducer looks for them).
int lthost_dist_reducer_prepare_for_backward(void* reducer, const at::Tensor* const* outputs, size_t n, char** err) {
  return guarded(err, [&] { static_cast<Reducer*>(reducer)->reducer->prepare_for_backward(tensors(outputs, n)); });
}
}
