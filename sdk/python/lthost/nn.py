"""torch.nn layers. The host creates and initialises their parameters (as torch.nn does)
and registers them by path; a layer gets its path from the attribute it is assigned to
(`self.hidden = nn.Linear(64, 128)` → `hidden.weight`, `hidden.bias`), or from `path=`."""

from wit_world.imports import nn as _nn


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


class Linear(Layer):
    @staticmethod
    def _create(path, in_features, out_features, bias=True):
        return _nn.Linear(path, in_features, out_features, bias)


class Conv2d(Layer):
    @staticmethod
    def _create(path, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
        opts = _nn.Conv2dOptions(pair(stride), pair(padding), pair(dilation), groups, bias)
        return _nn.Conv2d(path, in_channels, out_channels, pair(kernel_size), opts)


class BatchNorm(Layer):
    @staticmethod
    def _create(path, num_features, eps=1e-5, momentum=0.1, affine=True):
        return _nn.BatchNorm(path, num_features, eps, momentum, affine)


BatchNorm1d = BatchNorm2d = BatchNorm


class LayerNorm(Layer):
    @staticmethod
    def _create(path, normalized_shape, eps=1e-5, elementwise_affine=True):
        shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
        return _nn.LayerNorm(path, shape, eps, elementwise_affine)


class Embedding(Layer):
    @staticmethod
    def _create(path, num_embeddings, embedding_dim):
        return _nn.Embedding(path, num_embeddings, embedding_dim)


class Dropout(Layer):
    _needs_path = False

    @staticmethod
    def _create(_path, p=0.5):
        return _nn.Dropout(p)


def bind_layers(owner, name, value):
    """Gives a layer assigned to `owner.name` its path."""
    if isinstance(value, Layer):
        value._bind(name)


max_pool2d = _nn.max_pool2d
avg_pool2d = _nn.avg_pool2d
