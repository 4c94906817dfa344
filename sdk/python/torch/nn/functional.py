"""torch.nn.functional: the ATen operators torch's functional API calls, with its argument
handling (reductions by name, `training` flags, `_pair` sizes)."""

import math

from .. import _core
from .._core import B, F, I, Int, NONE, S, T, direct, opt_T
from .._tensor import Tensor

_REDUCTION = {"none": 0, "mean": 1, "sum": 2}


def _reduction(reduction, size_average=None, reduce=None):
    if size_average is not None or reduce is not None:
        raise NotImplementedError("size_average/reduce are deprecated in torch; use reduction=")
    if reduction not in _REDUCTION:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return Int(_REDUCTION[reduction])


def _list(v, n):
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


# ---- linear, convolution, embedding ----
def linear(input, weight, bias=None):
    return direct("aten::linear", input._h, weight._h, NONE if bias is None else bias._h)


def bilinear(input1, input2, weight, bias=None):
    return direct("aten::bilinear", T(input1), T(input2), T(weight), opt_T(bias))


def _conv(qual, n, input, weight, bias, stride, padding, dilation, groups):
    if isinstance(padding, str):
        return _core.call(qual[len("aten::") :], (input, weight, bias, _list(stride, n), padding, _list(dilation, n), groups), {})
    return direct(qual, T(input), T(weight), opt_T(bias), I(_list(stride, n)), I(_list(padding, n)), I(_list(dilation, n)), Int(groups))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("aten::conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("aten::conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("aten::conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return direct("aten::conv_transpose1d", T(input), T(weight), opt_T(bias), I(_list(stride, 1)), I(_list(padding, 1)), I(_list(output_padding, 1)), Int(groups), I(_list(dilation, 1)))


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return direct("aten::conv_transpose2d.input", T(input), T(weight), opt_T(bias), I(_list(stride, 2)), I(_list(padding, 2)), I(_list(output_padding, 2)), Int(groups), I(_list(dilation, 2)))


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    if max_norm is not None:
        raise NotImplementedError("F.embedding(max_norm=...) is not supported by lthost")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    if padding_idx is None and not scale_grad_by_freq and not sparse:
        return direct("aten::embedding", T(weight), T(input))  # the rest are the schema's defaults
    return direct("aten::embedding", T(weight), T(input), Int(-1 if padding_idx is None else padding_idx), B(scale_grad_by_freq), B(sparse))


def one_hot(tensor, num_classes=-1):
    return direct("aten::one_hot", T(tensor), Int(num_classes))


# ---- activations ----
def relu(input, inplace=False):
    if inplace:
        direct("aten::relu_", T(input))
        return input
    return direct("aten::relu", T(input))


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def gelu(input, approximate="none"):
    return direct("aten::gelu", T(input), _core._a.Arg_Str(approximate))


def silu(input, inplace=False):
    return direct("aten::silu", T(input))


def mish(input, inplace=False):
    return direct("aten::mish", T(input))


def tanh(input):
    return direct("aten::tanh", T(input))


def sigmoid(input):
    return direct("aten::sigmoid", T(input))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return direct("aten::hardtanh", T(input), S(min_val), S(max_val))


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return direct("aten::leaky_relu", T(input), S(negative_slope))


def elu(input, alpha=1.0, inplace=False):
    return direct("aten::elu", T(input), S(alpha), S(1), S(1))


def selu(input, inplace=False):
    return direct("aten::selu", T(input))


def celu(input, alpha=1.0, inplace=False):
    return direct("aten::celu", T(input), S(alpha))


def softplus(input, beta=1.0, threshold=20.0):
    return direct("aten::softplus", T(input), S(beta), S(threshold))


def logsigmoid(input):
    return direct("aten::log_sigmoid", T(input))


def hardswish(input, inplace=False):
    return direct("aten::hardswish", T(input))


def hardsigmoid(input, inplace=False):
    return direct("aten::hardsigmoid", T(input))


def glu(input, dim=-1):
    return direct("aten::glu", T(input), Int(dim))


def prelu(input, weight):
    return direct("aten::prelu", T(input), T(weight))


def softsign(input):
    return input / (input.abs() + 1)


def tanhshrink(input):
    return input - input.tanh()


def threshold(input, threshold, value, inplace=False):
    return direct("aten::threshold", T(input), S(threshold), S(value))


def _softmax_dim(ndim):
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    dim = _softmax_dim(input.dim()) if dim is None else dim
    return direct("aten::softmax.int", T(input), Int(dim), NONE if dtype is None else _core._a.Arg_Dtype(dtype._wit))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    dim = _softmax_dim(input.dim()) if dim is None else dim
    return direct("aten::log_softmax.int", T(input), Int(dim), NONE if dtype is None else _core._a.Arg_Dtype(dtype._wit))


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return softmax(-input, dim, dtype=dtype)


# ---- dropout ----
def dropout(input, p=0.5, training=True, inplace=False):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return direct("aten::dropout_" if inplace else "aten::dropout", T(input), F(p), B(training))


def dropout1d(input, p=0.5, training=True, inplace=False):
    return direct("aten::feature_dropout", T(input), F(p), B(training))


dropout2d = dropout3d = dropout1d


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    return direct("aten::alpha_dropout", T(input), F(p), B(training))


# ---- normalisation ----
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if eps == 1e-5:  # the schema's default, as `cudnn_enable`'s
        return direct("aten::layer_norm", T(input), I(_list(normalized_shape, 1)), opt_T(weight), opt_T(bias))
    return direct("aten::layer_norm", T(input), I(_list(normalized_shape, 1)), opt_T(weight), opt_T(bias), F(eps), B(True))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    return direct("aten::rms_norm", T(input), I(_list(normalized_shape, 1)), opt_T(weight), NONE if eps is None else F(eps))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    return direct("aten::group_norm", T(input), Int(num_groups), opt_T(weight), opt_T(bias), F(eps), B(True))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    return direct("aten::batch_norm", T(input), opt_T(weight), opt_T(bias), opt_T(running_mean), opt_T(running_var), B(training), F(momentum), F(eps), B(True))


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True, momentum=0.1, eps=1e-5):
    return direct("aten::instance_norm", T(input), opt_T(weight), opt_T(bias), opt_T(running_mean), opt_T(running_var), B(use_input_stats), F(momentum), F(eps), B(True))


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    denom = input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input)
    return input / denom


# ---- losses ----
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean", label_smoothing=0.0):
    if weight is None and size_average is None and reduce is None and reduction == "mean" and ignore_index == -100 and label_smoothing == 0.0:
        return direct("aten::cross_entropy_loss", T(input), T(target))  # the rest are the schema's defaults
    return direct("aten::cross_entropy_loss", T(input), T(target), opt_T(weight), _reduction(reduction, size_average, reduce), Int(ignore_index), F(label_smoothing))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    return direct("aten::nll_loss_nd", T(input), T(target), opt_T(weight), _reduction(reduction, size_average, reduce), Int(ignore_index))


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    if weight is not None:
        raise NotImplementedError("F.mse_loss(weight=...) is not supported by lthost yet")
    return direct("aten::mse_loss", T(input), T(target), _reduction(reduction, size_average, reduce))


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return direct("aten::l1_loss", T(input), T(target), _reduction(reduction, size_average, reduce))


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    return direct("aten::smooth_l1_loss", T(input), T(target), _reduction(reduction, size_average, reduce), F(beta))


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    if weight is not None:
        raise NotImplementedError("F.huber_loss(weight=...) is not supported by lthost yet")
    return direct("aten::huber_loss", T(input), T(target), _reduction(reduction), F(delta))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    return direct("aten::binary_cross_entropy", T(input), T(target), opt_T(weight), _reduction(reduction, size_average, reduce))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
    return direct("aten::binary_cross_entropy_with_logits", T(input), T(target), opt_T(weight), opt_T(pos_weight), _reduction(reduction, size_average, reduce))


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    if reduction == "batchmean":
        return _core.run_one("aten::kl_div", (T(input), T(target), Int(2)), [("log_target", B(log_target))]) / input.shape[0]
    return _core.run_one("aten::kl_div", (T(input), T(target), _reduction(reduction, size_average, reduce)), [("log_target", B(log_target))])


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    return direct("aten::cosine_similarity", T(x1), T(x2), Int(dim), F(eps))


# ---- pooling, padding, resampling ----
def _pool_stride(stride, kernel, n):
    return _list(kernel, n) if stride is None or stride == [] else _list(stride, n)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise NotImplementedError("F.max_pool1d(return_indices=True) is not supported by lthost")
    return direct("aten::max_pool1d", T(input), I(_list(kernel_size, 1)), I(_pool_stride(stride, kernel_size, 1)), I(_list(padding, 1)), I(_list(dilation, 1)), B(ceil_mode))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        return _core.call("max_pool2d_with_indices", (input, _list(kernel_size, 2), _pool_stride(stride, kernel_size, 2), _list(padding, 2), _list(dilation, 2), ceil_mode), {})
    return direct("aten::max_pool2d", T(input), I(_list(kernel_size, 2)), I(_pool_stride(stride, kernel_size, 2)), I(_list(padding, 2)), I(_list(dilation, 2)), B(ceil_mode))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return direct("aten::avg_pool1d", T(input), I(_list(kernel_size, 1)), I(_pool_stride(stride, kernel_size, 1)), I(_list(padding, 1)), B(ceil_mode), B(count_include_pad))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    return direct("aten::avg_pool2d", T(input), I(_list(kernel_size, 2)), I(_pool_stride(stride, kernel_size, 2)), I(_list(padding, 2)), B(ceil_mode), B(count_include_pad), NONE if divisor_override is None else Int(divisor_override))


def adaptive_avg_pool1d(input, output_size):
    return direct("aten::adaptive_avg_pool1d", T(input), I(_list(output_size, 1)))


def adaptive_avg_pool2d(input, output_size):
    size = _list(output_size, 2)
    size = [input.shape[-2 + i] if s is None else s for i, s in enumerate(size)]
    return direct("aten::adaptive_avg_pool2d", T(input), I(size))


def adaptive_max_pool2d(input, output_size, return_indices=False):
    out = _core.call("adaptive_max_pool2d", (input, _list(output_size, 2)), {})
    return out if return_indices else out[0]


def pad(input, pad, mode="constant", value=None):
    return direct("aten::pad", T(input), I(pad), _core._a.Arg_Str(mode), NONE if value is None else F(value))


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None, antialias=False):
    n = input.dim() - 2
    out_size = None if size is None else _list(size, n)
    scales = None if scale_factor is None else [float(s) for s in _list(scale_factor, n)]
    if mode == "nearest":
        name = {1: "upsample_nearest1d", 2: "upsample_nearest2d", 3: "upsample_nearest3d"}[n]
        return _core.call(name, (input, out_size, scales), {})
    if mode in ("linear", "bilinear", "trilinear", "bicubic"):
        name = {"linear": "upsample_linear1d", "bilinear": "upsample_bilinear2d", "trilinear": "upsample_trilinear3d", "bicubic": "upsample_bicubic2d"}[mode]
        return _core.call(name, (input, out_size, bool(align_corners), scales), {})
    raise NotImplementedError(f"F.interpolate(mode={mode!r}) is not supported by lthost")


upsample = interpolate


def pixel_shuffle(input, upscale_factor):
    return direct("aten::pixel_shuffle", T(input), Int(upscale_factor))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    return direct("aten::im2col", T(input), I(_list(kernel_size, 2)), I(_list(dilation, 2)), I(_list(padding, 2)), I(_list(stride, 2)))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    kw = [("enable_gqa", B(enable_gqa))] + ([] if scale is None else [("scale", F(scale))])
    return _core.run_one("aten::scaled_dot_product_attention", (T(query), T(key), T(value), opt_T(attn_mask), F(dropout_p), B(is_causal)), kw)


def multi_head_attention_forward(*args, **kwargs):
    from .transformer import multi_head_attention_forward as forward

    return forward(*args, **kwargs)


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("math", "Tensor")]


# ---- more of torch.nn.functional: shrinkage, 3-d and 1-d pooling, pixel unshuffle, LRN ----
def hardshrink(input, lambd=0.5):
    return _core.call("hardshrink", (input, lambd), {})


def softshrink(input, lambd=0.5):
    return _core.call("softshrink", (input, lambd), {})


def pixel_unshuffle(input, downscale_factor):
    return _core.call("pixel_unshuffle", (input, downscale_factor), {})


def adaptive_max_pool1d(input, output_size, return_indices=False):
    out = _core.call("adaptive_max_pool1d", (input, _list(output_size, 1)), {})
    return out if return_indices else out[0]


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    args = (input, _list(kernel_size, 3), _pool_stride(stride, kernel_size, 3), _list(padding, 3), _list(dilation, 3), ceil_mode)
    return _core.call("max_pool3d_with_indices" if return_indices else "max_pool3d", args, {})


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    args = (input, _list(kernel_size, 3), _pool_stride(stride, kernel_size, 3), _list(padding, 3), ceil_mode, count_include_pad, divisor_override)
    return _core.call("avg_pool3d", args, {})


def adaptive_avg_pool3d(input, output_size):
    size = _list(output_size, 3)
    size = [input.shape[-3 + i] if s is None else s for i, s in enumerate(size)]
    return _core.call("adaptive_avg_pool3d", (input, size), {})


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """torch's: each value over the mean square of its `size` neighbouring channels."""
    dim = input.dim()
    if dim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {dim} dimensions)")
    if input.numel() == 0:
        return input
    div = input.mul(input)
    if dim == 3:
        div = pad(div.unsqueeze(1), [0, 0, size // 2, (size - 1) // 2])
        div = avg_pool2d(div, (size, 1), stride=1).squeeze(1)
    else:
        sizes = input.size()
        div = div.view(sizes[0], 1, sizes[1], sizes[2], -1)
        div = pad(div, [0, 0, 0, 0, size // 2, (size - 1) // 2])
        div = avg_pool3d(div, (size, 1, 1), stride=1).squeeze(1).view(sizes)
    return input / div.mul(alpha).add(k).pow(beta)


# ---- more losses ----
def _reduced(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: input1: {input1.size()}, input2: {input2.size()}, target: {target.size()} ")
    return _core.call("margin_ranking_loss", (input1, input2, target, float(margin), _reduction_number(reduction, size_average, reduce)), {})


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    return _core.call("cosine_embedding_loss", (input1, input2, target, float(margin), _reduction_number(reduction, size_average, reduce)), {})


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    return _core.call("hinge_embedding_loss", (input, target, float(margin), _reduction_number(reduction, size_average, reduce)), {})


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _core.call("soft_margin_loss", (input, target, _reduction_number(reduction, size_average, reduce)), {})


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    _reduction_number(reduction, size_average, reduce)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    class_dim = input.dim() - 1
    return _reduced(loss.sum(dim=class_dim) / input.size(class_dim), reduction)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _core.call("multilabel_margin_loss", (input, target, _reduction_number(reduction, size_average, reduce)), {})


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None, reduction="mean"):
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    return _core.call("multi_margin_loss", (input, target, p, margin, weight, _reduction_number(reduction, size_average, reduce)), {})


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None, reduce=None, reduction="mean"):
    return _core.call("triplet_margin_loss", (anchor, positive, negative, float(margin), float(p), float(eps), swap, _reduction_number(reduction, size_average, reduce)), {})


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None, reduction="mean"):
    return _core.call("poisson_nll_loss", (input, target, log_input, full, float(eps), _reduction_number(reduction, size_average, reduce)), {})


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """torch's: 0.5 (log var + (input - target)² / var), var clamped at `eps` (no gradient
    through the clamp), var one dimension short or one broadcast dimension of input allowed."""
    import torch

    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = var * torch.ones_like(input)
    elif torch.any(var < 0):
        raise ValueError("var has negative entry/entries")
    if list(var.size()) != list(input.size()):
        if list(input.size())[:-1] == list(var.size()):
            var = var.unsqueeze(-1)
        elif input.dim() != var.dim() or sum(y for x, y in zip(input.size(), var.size()) if x != y) != 1:
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = var.clone()
    with torch.no_grad():
        var.clamp_(min=eps)
    loss = 0.5 * (torch.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduced(loss, reduction)


def _reduction_number(reduction, size_average, reduce):
    """The ATen reduction number of torch's `reduction` name."""
    return _reduction(reduction, size_average, reduce).value
