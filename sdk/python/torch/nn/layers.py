"""The torch.nn layers people use, with torch's parameters (names, shapes, `reset_parameters`
draws in torch's order) and forward passes on the functional API."""

import math

from .. import _core, empty, ones, zeros
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter
from .._tensor import Tensor


def _tuple(v, n):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def _uniform_bias(bias, weight):
    fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    init.uniform_(bias, -bound, bound)


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features))
        self.bias = Parameter(empty(out_features)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            _uniform_bias(self.bias, self.weight)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _ConvNd(Module):
    _n = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, padding_mode="zeros", device=None, dtype=None, output_padding=0):
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError(f"{type(self).__name__}(padding_mode={padding_mode!r}) is not supported by lthost")
        n = self._n
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = _tuple(kernel_size, n), _tuple(stride, n), _tuple(dilation, n)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n)
        self.output_padding = _tuple(output_padding, n)
        shape = (in_channels, out_channels // groups) if self._transposed else (out_channels, in_channels // groups)
        self.weight = Parameter(empty(*shape, *self.kernel_size))
        if bias:
            self.bias = Parameter(empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            _uniform_bias(self.bias, self.weight)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"


class Conv1d(_ConvNd):
    _n = 1

    def forward(self, x):
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv3d(_ConvNd):
    _n = 3

    def forward(self, x):
        return F.conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose1d(_ConvNd):
    _n = 1
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, output_padding=output_padding)

    def forward(self, x):
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation)


class ConvTranspose2d(ConvTranspose1d):
    _n = 2

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation)


def norm_state(module, num_features, eps, momentum, affine, track_running_stats):
    """A batch or instance norm's settings, `weight` (ones) and `bias` (zeros) when affine,
    and its running statistics when it tracks them (torch's `_NormBase`)."""
    module.num_features, module.eps, module.momentum = num_features, eps, momentum
    module.affine, module.track_running_stats = affine, track_running_stats
    if affine:
        module.weight = Parameter(ones(num_features))
        module.bias = Parameter(zeros(num_features))
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)
    if track_running_stats:
        module.register_buffer("running_mean", zeros(num_features))
        module.register_buffer("running_var", ones(num_features))
        module.register_buffer("num_batches_tracked", _core.call("zeros", ([],), {"dtype": _core.int64}))
    else:
        module.register_buffer("running_mean", None)
        module.register_buffer("running_var", None)
        module.register_buffer("num_batches_tracked", None)


class _BatchNorm(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None, dtype=None):
        super().__init__()
        norm_state(self, num_features, eps, momentum, affine, track_running_stats)
        self.reset_parameters()

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch,
            factor,
            self.eps,
        )

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, track_running_stats={self.track_running_stats}"


class BatchNorm1d(_BatchNorm):
    pass


class BatchNorm2d(_BatchNorm):
    pass


class BatchNorm3d(_BatchNorm):
    pass


def _affine(module, shape, weight, bias):
    """A norm layer's `weight` (ones) and `bias` (zeros) of `shape`, or None for those left out."""
    if weight:
        module.weight = Parameter(ones(*shape))
    else:
        module.register_parameter("weight", None)
    if bias:
        module.bias = Parameter(zeros(*shape))
    elif bias is not None:
        module.register_parameter("bias", None)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = _tuple(normalized_shape, 1)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        _affine(self, self.normalized_shape, elementwise_affine, elementwise_affine and bias)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class RMSNorm(Module):
    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape, self.eps = _tuple(normalized_shape, 1), eps
        _affine(self, self.normalized_shape, elementwise_affine, None)  # no bias at all

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)


class GroupNorm(Module):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        _affine(self, (num_channels,), affine, affine)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class Embedding(Module):
    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None and padding_idx < 0:
            padding_idx += num_embeddings
        self.padding_idx, self.max_norm, self.scale_grad_by_freq, self.sparse = padding_idx, max_norm, scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(empty(num_embeddings, embedding_dim), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            from .. import no_grad

            with no_grad():
                self.weight[self.padding_idx].fill_(0)

    def forward(self, x):
        return F.embedding(x, self.weight, self.padding_idx, self.max_norm, 2.0, self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, **kwargs):
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze)


class Dropout(Module):
    _fn = staticmethod(F.dropout)

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return type(self)._fn(x, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    _fn = staticmethod(F.dropout1d)


class Dropout2d(Dropout):
    _fn = staticmethod(F.dropout2d)


class AlphaDropout(Dropout):
    _fn = staticmethod(F.alpha_dropout)


def _init_from(name, params, strict=True):
    """An `__init__` taking `params` ((name, default), ...) positionally or by name, kept
    as attributes (a tensor as a buffer, as torch keeps a loss's class weights); other
    keyword arguments are refused (`strict`) or kept too."""

    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        if len(args) > len(params):
            raise TypeError(f"{name}.__init__() takes {len(params) + 1} positional arguments but {len(args) + 1} were given")
        values = dict(params)
        for (k, _), v in zip(params, args):
            values[k] = v
        for k, v in kwargs.items():
            if strict and k not in values:
                raise TypeError(f"{name}() got an unexpected keyword argument '{k}'")
            values[k] = v
        for k, v in values.items():
            if isinstance(v, Tensor):
                self.register_buffer(k, v)
            else:
                setattr(self, k, v)

    return __init__


def _activation(name, fn, params=()):
    def forward(self, x):
        return fn(x, **{k: getattr(self, k) for k, _ in params if k != "inplace"})

    return type(name, (Module,), {"__init__": _init_from(name, params), "forward": forward, "__module__": __name__})


ReLU = _activation("ReLU", lambda x: F.relu(x), (("inplace", False),))
ReLU6 = _activation("ReLU6", lambda x: F.relu6(x), (("inplace", False),))
GELU = _activation("GELU", lambda x, approximate: F.gelu(x, approximate), (("approximate", "none"),))
SiLU = _activation("SiLU", lambda x: F.silu(x), (("inplace", False),))
Mish = _activation("Mish", lambda x: F.mish(x), (("inplace", False),))
Tanh = _activation("Tanh", F.tanh)
Sigmoid = _activation("Sigmoid", F.sigmoid)
LeakyReLU = _activation("LeakyReLU", lambda x, negative_slope: F.leaky_relu(x, negative_slope), (("negative_slope", 0.01), ("inplace", False)))
ELU = _activation("ELU", lambda x, alpha: F.elu(x, alpha), (("alpha", 1.0), ("inplace", False)))
SELU = _activation("SELU", lambda x: F.selu(x), (("inplace", False),))
CELU = _activation("CELU", lambda x, alpha: F.celu(x, alpha), (("alpha", 1.0), ("inplace", False)))
Softplus = _activation("Softplus", lambda x, beta, threshold: F.softplus(x, beta, threshold), (("beta", 1.0), ("threshold", 20.0)))
Hardtanh = _activation("Hardtanh", lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val), (("min_val", -1.0), ("max_val", 1.0), ("inplace", False)))
Hardswish = _activation("Hardswish", lambda x: F.hardswish(x), (("inplace", False),))
Hardsigmoid = _activation("Hardsigmoid", lambda x: F.hardsigmoid(x), (("inplace", False),))
LogSigmoid = _activation("LogSigmoid", F.logsigmoid)
Softsign = _activation("Softsign", F.softsign)
Tanhshrink = _activation("Tanhshrink", F.tanhshrink)
GLU = _activation("GLU", lambda x, dim: F.glu(x, dim), (("dim", -1),))
Softmax = _activation("Softmax", lambda x, dim: F.softmax(x, dim), (("dim", None),))
LogSoftmax = _activation("LogSoftmax", lambda x, dim: F.log_softmax(x, dim), (("dim", None),))
Softmin = _activation("Softmin", lambda x, dim: F.softmin(x, dim), (("dim", None),))
Threshold = _activation("Threshold", lambda x, threshold, value: F.threshold(x, threshold, value), (("threshold", None), ("value", None), ("inplace", False)))
Hardshrink = _activation("Hardshrink", lambda x, lambd: F.hardshrink(x, lambd), (("lambd", 0.5),))
Softshrink = _activation("Softshrink", lambda x, lambd: F.softshrink(x, lambd), (("lambd", 0.5),))


class Softmax2d(Module):
    def forward(self, input):
        if input.dim() not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {input.dim()}D instead")
        return F.softmax(input, -3)


class PReLU(Module):
    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(empty(num_parameters))
        self.reset_parameters()

    def reset_parameters(self):
        init.constant_(self.weight, self.init)

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Bilinear(Module):
    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = Parameter(empty(out_features, in1_features, in2_features))
        if bias:
            self.bias = Parameter(empty(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.in1_features <= 0:
            raise ValueError(f"in1_features must be > 0, but got (in1_features={self.in1_features})")
        bound = 1 / math.sqrt(self.weight.size(1))
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return f"in1_features={self.in1_features}, in2_features={self.in2_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LocalResponseNorm(Module):
    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class Unflatten(Module):
    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        return x.unflatten(self.dim, list(self.unflattened_size))


def _pool(name, fn, params):
    def forward(self, x):
        return fn(x, **{k: getattr(self, k) for k, _ in params})

    return type(name, (Module,), {"__init__": _init_from(name, params, False), "forward": forward, "__module__": __name__})


_REQUIRED = None
MaxPool1d = _pool("MaxPool1d", F.max_pool1d, (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("dilation", 1), ("return_indices", False), ("ceil_mode", False)))
MaxPool2d = _pool("MaxPool2d", F.max_pool2d, (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("dilation", 1), ("return_indices", False), ("ceil_mode", False)))
AvgPool1d = _pool("AvgPool1d", F.avg_pool1d, (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False), ("count_include_pad", True)))
AvgPool2d = _pool("AvgPool2d", F.avg_pool2d, (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False), ("count_include_pad", True), ("divisor_override", None)))
AdaptiveAvgPool1d = _pool("AdaptiveAvgPool1d", F.adaptive_avg_pool1d, (("output_size", _REQUIRED),))
AdaptiveAvgPool2d = _pool("AdaptiveAvgPool2d", F.adaptive_avg_pool2d, (("output_size", _REQUIRED),))
AdaptiveMaxPool2d = _pool("AdaptiveMaxPool2d", F.adaptive_max_pool2d, (("output_size", _REQUIRED), ("return_indices", False)))
Upsample = _pool("Upsample", F.interpolate, (("size", None), ("scale_factor", None), ("mode", "nearest"), ("align_corners", None)))
PixelShuffle = _pool("PixelShuffle", F.pixel_shuffle, (("upscale_factor", _REQUIRED),))
PixelUnshuffle = _pool("PixelUnshuffle", F.pixel_unshuffle, (("downscale_factor", _REQUIRED),))
AdaptiveMaxPool1d = _pool("AdaptiveMaxPool1d", F.adaptive_max_pool1d, (("output_size", _REQUIRED), ("return_indices", False)))
MaxPool3d = _pool("MaxPool3d", F.max_pool3d, (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("dilation", 1), ("return_indices", False), ("ceil_mode", False)))
AvgPool3d = _pool("AvgPool3d", F.avg_pool3d, (("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False), ("count_include_pad", True), ("divisor_override", None)))
AdaptiveAvgPool3d = _pool("AdaptiveAvgPool3d", F.adaptive_avg_pool3d, (("output_size", _REQUIRED),))


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


def _loss(name, fn, params):
    def forward(self, input, target):
        return fn(input, target, **{k: getattr(self, k) for k, _ in params})

    return type(name, (Module,), {"__init__": _init_from(name, params, False), "forward": forward, "__module__": __name__})


MSELoss = _loss("MSELoss", F.mse_loss, (("reduction", "mean"),))
L1Loss = _loss("L1Loss", F.l1_loss, (("reduction", "mean"),))
SmoothL1Loss = _loss("SmoothL1Loss", F.smooth_l1_loss, (("reduction", "mean"), ("beta", 1.0)))
HuberLoss = _loss("HuberLoss", F.huber_loss, (("reduction", "mean"), ("delta", 1.0)))
CrossEntropyLoss = _loss("CrossEntropyLoss", F.cross_entropy, (("weight", None), ("ignore_index", -100), ("reduction", "mean"), ("label_smoothing", 0.0)))
NLLLoss = _loss("NLLLoss", F.nll_loss, (("weight", None), ("ignore_index", -100), ("reduction", "mean")))
BCELoss = _loss("BCELoss", F.binary_cross_entropy, (("weight", None), ("reduction", "mean")))
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits, (("weight", None), ("reduction", "mean"), ("pos_weight", None)))
KLDivLoss = _loss("KLDivLoss", F.kl_div, (("reduction", "mean"), ("log_target", False)))
CosineSimilarity = _loss("CosineSimilarity", F.cosine_similarity, (("dim", 1), ("eps", 1e-8)))
_LEGACY = (("size_average", None), ("reduce", None))  # torch's deprecated pair; F refuses them
HingeEmbeddingLoss = _loss("HingeEmbeddingLoss", F.hinge_embedding_loss, (("margin", 1.0), *_LEGACY, ("reduction", "mean")))
SoftMarginLoss = _loss("SoftMarginLoss", F.soft_margin_loss, (*_LEGACY, ("reduction", "mean")))
MultiLabelSoftMarginLoss = _loss("MultiLabelSoftMarginLoss", F.multilabel_soft_margin_loss, (("weight", None), *_LEGACY, ("reduction", "mean")))
MultiLabelMarginLoss = _loss("MultiLabelMarginLoss", F.multilabel_margin_loss, (*_LEGACY, ("reduction", "mean")))
PoissonNLLLoss = _loss("PoissonNLLLoss", F.poisson_nll_loss, (("log_input", True), ("full", False), ("size_average", None), ("eps", 1e-8), ("reduce", None), ("reduction", "mean")))


class MultiMarginLoss(_loss("MultiMarginLoss", F.multi_margin_loss, (("p", 1), ("margin", 1.0), ("weight", None), *_LEGACY, ("reduction", "mean")))):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.p not in (1, 2):
            raise ValueError("only p == 1 and p == 2 supported")
        if self.weight is not None and self.weight.dim() != 1:
            raise ValueError(f"MultiMarginLoss: expected weight to be None or 1D tensor, got {self.weight.dim()}D instead")


def _loss3(name, fn, params):
    """A loss of three tensors (torch's argument names: MarginRankingLoss's input1, input2,
    target; TripletMarginLoss's anchor, positive, negative; GaussianNLLLoss's input, target, var)."""

    def forward(self, a, b, c):
        return fn(a, b, c, **{k: getattr(self, k) for k, _ in params})

    return type(name, (Module,), {"__init__": _init_from(name, params, False), "forward": forward, "__module__": __name__})


MarginRankingLoss = _loss3("MarginRankingLoss", F.margin_ranking_loss, (("margin", 0.0), *_LEGACY, ("reduction", "mean")))
CosineEmbeddingLoss = _loss3("CosineEmbeddingLoss", F.cosine_embedding_loss, (("margin", 0.0), *_LEGACY, ("reduction", "mean")))


class TripletMarginLoss(_loss3("TripletMarginLoss", F.triplet_margin_loss, (("margin", 1.0), ("p", 2.0), ("eps", 1e-6), ("swap", False), *_LEGACY, ("reduction", "mean")))):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.margin <= 0:
            raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got {self.margin} instead")


GaussianNLLLoss = _loss3("GaussianNLLLoss", F.gaussian_nll_loss, (("full", False), ("eps", 1e-6), ("reduction", "mean")))
__all__ = [n for n, v in list(globals().items()) if isinstance(v, type) and issubclass(v, Module) and not n.startswith('_')]
