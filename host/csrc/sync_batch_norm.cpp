// `sync_batchnorm=True` under DDP: torch.nn.SyncBatchNorm's autograd function
// (torch/nn/modules/_functions.py) over the host's process group, registered with the
// dispatcher as `lthost::sync_batch_norm`, whose schema is `aten::batch_norm`'s. In a run
// with sync_batchnorm the host resolves a plugin's `aten::batch_norm` to it
// (engine/aten.rs), so every BatchNorm layer of every SDK is synced, as Lightning's
// `convert_sync_batchnorm` converts every `_BatchNorm`.
//
// In training with a group of two or more ranks, the batch statistics are all-gathered
// (mean, invstd and count per rank), combined as `batch_norm_gather_stats_with_counts` does
// (which also updates the running stats with the global mean and unbiased variance), and in
// backward the per-channel sums of dy and dy·(x - mean) are all-reduced before the input's
// gradient is made. Otherwise it is `at::batch_norm`, unchanged.
//
// On CUDA the kernels are torch's own (batch_norm_stats, _gather_stats_with_counts, _elemt,
// _backward_reduce, _backward_elemt, as SyncBatchNorm calls them). They have no CPU kernels
// (torch refuses SyncBatchNorm on the CPU), so on the CPU the same formulas are written with
// ATen ops in the input's op-math type (float for half and bfloat16): the Welford combination
// of the ranks' statistics in rank order, as the CUDA kernel loops.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/TensorIndexing.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/library.h>

#include <atomic>
#include <mutex>

namespace {

std::mutex group_mutex;
// The module's train mode as the host set it (Lightning's `model.train()` / `eval()`).
std::atomic<bool> module_training{false};
c10::intrusive_ptr<c10d::ProcessGroup> sync_group;

c10::intrusive_ptr<c10d::ProcessGroup> group() {
  std::lock_guard<std::mutex> lock(group_mutex);
  return sync_group;
}

// Every dimension but the channels (1).
std::vector<int64_t> reduced_dims(const at::Tensor& t) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (d != 1) dims.push_back(d);
  return dims;
}

// A per-channel vector shaped to broadcast against `like` ([1, C, 1, ...]).
at::Tensor per_channel(const at::Tensor& v, const at::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[1] = v.numel();
  return v.reshape(shape);
}

at::ScalarType opmath(const at::Tensor& t) { return at::toOpMathType(t.scalar_type()); }

bool contiguous_enough(const at::Tensor& t) {
  return t.is_contiguous(at::MemoryFormat::ChannelsLast) || t.is_contiguous(at::MemoryFormat::ChannelsLast3d);
}

// batch_norm_stats: this rank's per-channel mean and 1 / sqrt(biased var + eps).
std::tuple<at::Tensor, at::Tensor> stats(const at::Tensor& input, double eps) {
  if (input.is_cuda()) return at::batch_norm_stats(input, eps);
  auto x = input.to(opmath(input));
  auto [var, mean] = at::var_mean(x, reduced_dims(x), /*correction=*/0, /*keepdim=*/false);
  // The kernel's InvStd: 0 where the variance and eps are both 0.
  auto invstd = (var + eps).rsqrt();
  if (eps == 0) invstd = at::where(var == 0, at::zeros_like(invstd), invstd);
  return {mean, invstd};
}

// batch_norm_gather_stats_with_counts: the ranks' statistics combined (Welford, rank order),
// the running stats updated with the global mean and unbiased variance.
std::tuple<at::Tensor, at::Tensor> gather_stats(const at::Tensor& input, const at::Tensor& mean_all,
                                                const at::Tensor& invstd_all, const at::Tensor& running_mean,
                                                const at::Tensor& running_var, double momentum, double eps,
                                                const at::Tensor& counts) {
  if (input.is_cuda())
    return at::batch_norm_gather_stats_with_counts(input, mean_all, invstd_all, running_mean, running_var, momentum,
                                                   eps, counts);
  auto acc = opmath(input);
  auto means = mean_all.to(acc);
  auto invstds = invstd_all.to(acc);
  auto ns = counts.to(at::kDouble);
  auto avg = at::zeros({means.size(1)}, means.options());
  auto var_n = at::zeros_like(avg);
  double n = 0;
  for (int64_t j = 0; j < means.size(0); ++j) {
    double count = ns[j].item<double>();
    auto m = means[j];
    auto v = invstds[j].reciprocal();
    v = (v * v - eps) * count;
    double factor = 1.0 / (n + count);
    var_n = var_n + v + (avg - m) * (avg - m) * (n * count * factor);
    avg = avg * (n * factor) + m * (count * factor);
    n += count;
  }
  auto invstd = (var_n / n + eps).rsqrt();
  if (running_mean.defined()) running_mean.copy_(running_mean.to(acc) * (1 - momentum) + avg * momentum);
  if (running_var.defined()) running_var.copy_(running_var.to(acc) * (1 - momentum) + var_n / (n - 1) * momentum);
  return {avg, invstd};
}

// batch_norm_elemt: (x - mean) * invstd * weight + bias.
at::Tensor elemt(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean,
                 const at::Tensor& invstd, double eps) {
  if (input.is_cuda()) return at::batch_norm_elemt(input, weight, bias, mean, invstd, eps);
  auto x = input.to(opmath(input));
  auto out = (x - per_channel(mean, x)) * per_channel(invstd, x);
  if (weight.defined()) out = out * per_channel(weight.to(x.scalar_type()), x);
  if (bias.defined()) out = out + per_channel(bias.to(x.scalar_type()), x);
  return out.to(input.scalar_type());
}

// batch_norm_backward_reduce: per channel Σdy, Σdy·(x - mean), and weight's and bias's
// gradients from this rank's rows.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_reduce(const at::Tensor& dy,
                                                                          const at::Tensor& input,
                                                                          const at::Tensor& mean,
                                                                          const at::Tensor& invstd,
                                                                          const at::Tensor& weight, bool input_g,
                                                                          bool weight_g, bool bias_g) {
  if (input.is_cuda())
    return at::batch_norm_backward_reduce(dy, input, mean, invstd, weight, input_g, weight_g, bias_g);
  auto x = input.to(opmath(input));
  auto g = dy.to(x.scalar_type());
  auto dims = reduced_dims(x);
  auto sum_dy = g.sum(dims);
  auto sum_dy_xmu = (g * (x - per_channel(mean, x))).sum(dims);
  at::Tensor grad_weight, grad_bias;
  if (weight.defined() && weight_g) grad_weight = (sum_dy_xmu * invstd).to(weight.scalar_type());
  if (weight.defined() && bias_g) grad_bias = sum_dy.to(weight.scalar_type());
  return {sum_dy, sum_dy_xmu, grad_weight, grad_bias};
}

// batch_norm_backward_elemt: the input's gradient from the all-reduced sums.
at::Tensor backward_elemt(const at::Tensor& dy, const at::Tensor& input, const at::Tensor& mean,
                          const at::Tensor& invstd, const at::Tensor& weight, const at::Tensor& sum_dy,
                          const at::Tensor& sum_dy_xmu, const at::Tensor& count) {
  if (input.is_cuda())
    return at::batch_norm_backward_elemt(dy, input, mean, invstd, weight, sum_dy, sum_dy_xmu, count);
  auto x = input.to(opmath(input));
  auto g = dy.to(x.scalar_type());
  double total = count.sum().item<double>();
  auto mean_dy = sum_dy / total;
  auto factor_1 = invstd * invstd * sum_dy_xmu / total;
  auto factor_2 = weight.defined() ? weight.to(x.scalar_type()) * invstd : invstd;
  auto gi = (g - per_channel(mean_dy, x) - (x - per_channel(mean, x)) * per_channel(factor_1, x)) *
            per_channel(factor_2, x);
  return gi.to(input.scalar_type());
}

struct SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor input, at::Tensor weight,
                            at::Tensor bias, at::Tensor running_mean, at::Tensor running_var, double eps,
                            double momentum) {
    auto pg = group();
    TORCH_CHECK(pg, "sync_batchnorm: the process group is gone");
    int64_t world = pg->getSize();
    if (!contiguous_enough(input)) input = input.contiguous();
    if (weight.defined()) weight = weight.contiguous();
    int64_t channels = input.size(1);
    at::Tensor combined;
    if (input.numel() > 0) {
      auto [mean, invstd] = stats(input, eps);
      auto count = at::full({1}, static_cast<double>(input.numel() / channels), mean.options());
      combined = at::cat({mean, invstd, count}, 0);
    } else {
      // Zero statistics and count: filtered out below, but this rank still takes part.
      combined = at::zeros({2 * channels + 1}, input.options());
    }
    std::vector<std::vector<at::Tensor>> gathered(1);
    for (int64_t r = 0; r < world; ++r) gathered[0].push_back(at::empty_like(combined));
    std::vector<at::Tensor> mine{combined};
    pg->allgather(gathered, mine)->wait();
    auto all = at::stack(gathered[0], 0);
    auto parts = all.split(channels, 1);
    auto mean_all = parts[0], invstd_all = parts[1], count_all = parts[2];
    // The statistics of ranks with an empty input are left out.
    auto nonempty = count_all.squeeze(-1) >= 1;
    count_all = count_all.index({nonempty});
    mean_all = mean_all.index({nonempty});
    invstd_all = invstd_all.index({nonempty});
    auto counts = count_all.view(-1);
    if (running_mean.defined() && counts.scalar_type() != running_mean.scalar_type())
      counts = counts.to(running_mean.scalar_type());
    auto [mean, invstd] =
        gather_stats(input, mean_all, invstd_all, running_mean, running_var, momentum, eps, counts);
    ctx->save_for_backward({input, weight, mean, invstd, count_all.to(at::kInt)});
    ctx->saved_data["channels"] = channels;
    if (input.numel() == 0) return at::empty_like(input);
    return elemt(input, weight, bias, mean, invstd, eps);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto dy = grads[0];
    if (!contiguous_enough(dy)) dy = dy.contiguous();
    auto saved = ctx->get_saved_variables();
    auto input = saved[0], weight = saved[1], mean = saved[2], invstd = saved[3], count = saved[4];
    bool input_g = ctx->needs_input_grad(0), weight_g = ctx->needs_input_grad(1), bias_g = ctx->needs_input_grad(2);
    auto pg = group();
    TORCH_CHECK(pg, "sync_batchnorm: the process group is gone");
    at::Tensor grad_input, grad_weight, grad_bias;
    if (input.numel() > 0) {
      at::Tensor sum_dy, sum_dy_xmu;
      std::tie(sum_dy, sum_dy_xmu, grad_weight, grad_bias) =
          backward_reduce(dy, input, mean, invstd, weight, input_g, weight_g, bias_g);
      if (input_g) {
        int64_t channels = sum_dy.size(0);
        std::vector<at::Tensor> combined{at::cat({sum_dy, sum_dy_xmu}, 0)};
        pg->allreduce(combined)->wait();
        auto sums = combined[0].split(channels);
        auto w = weight;
        if (w.defined() && w.scalar_type() != mean.scalar_type()) w = w.to(mean.scalar_type());
        grad_input = backward_elemt(dy, input, mean, invstd, w, sums[0], sums[1], count);
      }
      if (!weight.defined() || !weight_g) grad_weight = at::Tensor();
      if (!weight.defined() || !bias_g) grad_bias = at::Tensor();
    } else if (input_g) {
      // An empty input: no gradient here, but the peers' all-reduce needs this rank.
      int64_t channels = ctx->saved_data["channels"].toInt();
      std::vector<at::Tensor> zeros{at::zeros({2 * channels}, input.options())};
      pg->allreduce(zeros)->wait();
    }
    return {grad_input, grad_weight, grad_bias, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor or_undefined(const std::optional<at::Tensor>& t) { return t.has_value() ? *t : at::Tensor(); }

// `aten::batch_norm`'s arguments; synced only in training (the call's batch statistics, the
// module in train mode: SyncBatchNorm's `bn_training and self.training`) in a group of two or
// more.
at::Tensor sync_batch_norm(const at::Tensor& input, const std::optional<at::Tensor>& weight,
                           const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& running_mean,
                           const std::optional<at::Tensor>& running_var, bool training, double momentum, double eps,
                           bool cudnn_enabled) {
  auto pg = group();
  if (!training || !module_training.load() || !pg || pg->getSize() < 2)
    return at::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled);
  TORCH_CHECK(input.dim() >= 2, "expected at least 2D input (got ", input.dim(), "D input)");
  TORCH_CHECK(input.size(1) != 0, "SyncBatchNorm number of input channels should be non-zero");
  return SyncBatchNormFn::apply(input, or_undefined(weight), or_undefined(bias), or_undefined(running_mean),
                                or_undefined(running_var), eps, momentum);
}

}  // namespace

TORCH_LIBRARY(lthost, m) {
  m.def(
      "sync_batch_norm(Tensor input, Tensor? weight, Tensor? bias, Tensor? running_mean, Tensor? running_var, "
      "bool training, float momentum, float eps, bool cudnn_enabled) -> Tensor");
  m.impl("sync_batch_norm", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(sync_batch_norm));
}

// The group `lthost::sync_batch_norm` syncs over (null: none, plain batch norm).
void lthost_sync_batch_norm_use(c10::intrusive_ptr<c10d::ProcessGroup> pg) {
  std::lock_guard<std::mutex> lock(group_mutex);
  sync_group = std::move(pg);
}

// Lightning's `model.train()` / `model.eval()`, from the host's run context.
extern "C" void lthost_sync_batch_norm_module_training(int on) { module_training.store(on != 0); }
