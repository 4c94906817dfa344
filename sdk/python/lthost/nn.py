"""torch.nn layers, written on the generic ATen operators (`lthost.aten`): their parameters
are the plugin's tensors, drawn as torch.nn's `reset_parameters` draws them and registered
with the host by path; a layer gets its path from the attribute it is assigned to
(`self.hidden = nn.Linear(64, 128)` → `hidden.weight`, `hidden.bias`), or from `path=`."""

import math

from wit_world.imports import parameters as _params
from wit_world.imports import trainer as _trainer
from wit_world.imports.types import Dtype

from . import aten

class Layer:
    """A layer whose host resource is made when it learns its path."""

    _make = None

    def __init__(self, *args, path=None, **kwargs):
        self._args, self._kwargs, self._layer = args, kwargs, None
        if path is not None or not self._needs_path:
            self._bind(path)

    _needs_path = True

    def _bind(self, path):
        if self._layer is None:
            self._layer = self._create(path, *self._args, **self._kwargs)
        return self

    def __call__(self, *inputs):
        if self._layer is None:
            raise RuntimeError(f"{type(self).__name__} used before it was assigned to a module attribute (or given path=)")
        return self._layer.forward(*inputs)

    forward = __call__


def _join(path, name):
    return f"{path}.{name}" if path else name


def _empty(shape):
    return aten.empty(list(shape), dtype=Dtype.FLOAT32)


def _uniform(shape, bound):
    t = _empty(shape)
    with aten.no_grad():
        aten.uniform_(t, -bound, bound)
    return t


def _fill(shape, value):
    t = _empty(shape)
    with aten.no_grad():
        aten.fill_scalar_(t, float(value))
    return t


def _kaiming_uniform_sqrt5(shape):
    """init.kaiming_uniform_(w, a=math.sqrt(5)), with torch's arithmetic."""
    fan_in = shape[1] * math.prod(shape[2:])
    a = math.sqrt(5)
    gain = math.sqrt(2.0 / (1 + a * a))
    return _uniform(shape, math.sqrt(3.0) * (gain / math.sqrt(fan_in)))


def _register(path, t):
    try:
        return _params.register_parameter(path, t)
    except Exception as e:  # the host's refusal (a path registered twice, ...)
        raise RuntimeError(f"register_parameter `{path}`: {getattr(e, 'value', e)}") from None


def _buffer(path, t):
    try:
        return _params.register_buffer(path, t, True)
    except Exception as e:
        raise RuntimeError(f"register_buffer `{path}`: {getattr(e, 'value', e)}") from None


class _Linear:
    def __init__(self, path, in_features, out_features, bias):
        self.weight = _register(_join(path, "weight"), _kaiming_uniform_sqrt5([out_features, in_features]))
        b = 1 / math.sqrt(in_features) if in_features > 0 else 0
        self.bias = _register(_join(path, "bias"), _uniform([out_features], b)) if bias else None
        _params.register_module(path, "Linear")

    def forward(self, x):
        return aten.linear(x, self.weight, self.bias)


class Linear(Layer):
    @staticmethod
    def _create(path, in_features, out_features, bias=True):
        return _Linear(path, in_features, out_features, bias)


class _Conv2d:
    def __init__(self, path, cin, cout, kernel, stride, padding, dilation, groups, bias):
        if groups <= 0 or cin % groups or cout % groups:
            raise ValueError(f"conv2d `{path}`: channels {cin}→{cout} not divisible by groups {groups}")
        shape = [cout, cin // groups, kernel[0], kernel[1]]
        self.weight = _register(_join(path, "weight"), _kaiming_uniform_sqrt5(shape))
        fan_in = shape[1] * shape[2] * shape[3]
        b = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        self.bias = _register(_join(path, "bias"), _uniform([cout], b)) if bias else None
        self.args = (list(stride), list(padding), list(dilation), groups)
        _params.register_module(path, "Conv2d")

    def forward(self, x):
        stride, padding, dilation, groups = self.args
        return aten.conv2d(x, self.weight, self.bias, stride, padding, dilation, groups)


class Conv2d(Layer):
    @staticmethod
    def _create(path, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
        return _Conv2d(path, in_channels, out_channels, pair(kernel_size), pair(stride), pair(padding), pair(dilation), groups, bias)


class _BatchNorm:
    def __init__(self, path, n, eps, momentum, affine):
        self.weight = _register(_join(path, "weight"), _fill([n], 1.0)) if affine else None
        self.bias = _register(_join(path, "bias"), _fill([n], 0.0)) if affine else None
        self.running_mean = _buffer(_join(path, "running_mean"), _fill([n], 0.0))
        self.running_var = _buffer(_join(path, "running_var"), _fill([n], 1.0))
        self.num_batches_tracked = _buffer(_join(path, "num_batches_tracked"), aten.zeros([], dtype=Dtype.INT64))
        self.eps, self.momentum = eps, momentum
        _params.register_module(path, "BatchNorm")

    def forward(self, x):
        training = _trainer.training()
        if training:
            with aten.no_grad():
                aten.add_scalar_(self.num_batches_tracked, 1)
        return aten.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, training,
                               self.momentum, self.eps, True)


class BatchNorm(Layer):
    @staticmethod
    def _create(path, num_features, eps=1e-5, momentum=0.1, affine=True):
        return _BatchNorm(path, num_features, eps, momentum, affine)


BatchNorm1d = BatchNorm2d = BatchNorm


class _LayerNorm:
    def __init__(self, path, shape, eps, affine, bias):
        self.weight = _register(_join(path, "weight"), _fill(shape, 1.0)) if affine else None
        self.bias = _register(_join(path, "bias"), _fill(shape, 0.0)) if affine and bias else None
        self.shape, self.eps = shape, eps
        _params.register_module(path, "LayerNorm")

    def forward(self, x):
        return aten.layer_norm(x, self.shape, self.weight, self.bias, self.eps, True)


class LayerNorm(Layer):
    @staticmethod
    def _create(path, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
        return _LayerNorm(path, shape, eps, elementwise_affine, bias)


class _Embedding:
    def __init__(self, path, num, dim):
        w = _empty([num, dim])
        with aten.no_grad():
            aten.normal_(w, 0.0, 1.0)
        self.weight = _register(_join(path, "weight"), w)
        _params.register_module(path, "Embedding")

    def forward(self, idx):
        return aten.embedding(self.weight, idx, -1, False, False)


class Embedding(Layer):
    @staticmethod
    def _create(path, num_embeddings, embedding_dim):
        return _Embedding(path, num_embeddings, embedding_dim)


class _Dropout:
    def __init__(self, p):
        if not 0.0 <= p <= 1.0:
            aten.raise_("dropout", f"probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return aten.dropout(x, self.p, _trainer.training())


class Dropout(Layer):
    _needs_path = False

    @staticmethod
    def _create(_path, p=0.5):
        return _Dropout(p)


def bind_layers(owner, name, value):
    """Gives a layer assigned to `owner.name` its path."""
    if isinstance(value, Layer):
        value._bind(name)


def max_pool2d(x, kernel, stride, padding):
    """F.max_pool2d (dilation 1, no ceil mode)."""
    return aten.max_pool2d(x, list(kernel), list(stride), list(padding), [1, 1], False)


def avg_pool2d(x, kernel, stride, padding):
    """F.avg_pool2d (no ceil mode, count_include_pad)."""
    return aten.avg_pool2d(x, list(kernel), list(stride), list(padding), False, True, None)


def adaptive_avg_pool2d(x, output_size):
    """F.adaptive_avg_pool2d."""
    return aten.adaptive_avg_pool2d(x, list(output_size))
