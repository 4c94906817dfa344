"""torch.Tensor: a handle to a host tensor with torch's methods, operators, properties and
indexing. Methods not written here are torch's ATen methods, resolved by `_core.call`."""

import builtins
import collections
import struct

from componentize_py_types import Err

from . import _core, _schemas
from ._core import Size, call, device, direct, dtype, wrap

_UNPACK = {"float32": "f", "float64": "d", "float16": "e", "int64": "q", "int32": "i", "uint8": "B", "bool": "?"}


def _err(f, *args):
    try:
        return f(*args)
    except Err as e:
        raise RuntimeError(e.value) from None


class Tensor:
    """A tensor in the host; every op runs there through libtorch, with autograd."""

    __slots__ = ("_h", "__dict__", "__weakref__")

    def __new__(cls, *args):
        """torch.Tensor(2, 3): an uninitialised float32 tensor of that size; torch.Tensor(data):
        float32 values (torch's legacy constructor)."""
        from . import empty, tensor

        if all(isinstance(a, builtins.int) and not isinstance(a, builtins.bool) for a in args):
            t = empty(*args) if args else empty(0)
        elif len(args) == 1:
            t = tensor(args[0], dtype=_core.float32)
        else:
            raise TypeError(f"torch.Tensor() takes sizes or one sequence of numbers, got {args!r}")
        if cls is not Tensor:
            out = object.__new__(cls)
            out._h = t._h
            return out
        return t

    def __init__(self, *args, **kwargs):
        pass

    def __deepcopy__(self, memo):
        """copy.deepcopy of a leaf (a module's parameters and buffers, as `nn.TransformerEncoder`
        clones its layer): new storage, the same values, class and requires_grad."""
        if id(self) in memo:
            return memo[id(self)]
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol at the moment.")
        from . import no_grad

        with no_grad():
            data = self.clone()
        out = object.__new__(type(self))
        out._h = data._h
        if self.requires_grad:
            out.requires_grad_(True)
        for k, v in self.__dict__.items():
            if k != "_lt_path":
                out.__dict__[k] = v
        memo[id(self)] = out
        return out

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        from . import tensor

        return tensor(data, dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)

    @property
    def is_leaf(self):
        return call("is_leaf", (self,), {})

    # ---- properties ----
    @property
    def shape(self):
        return Size(self._h.shape())

    def size(self, dim=None):
        s = self._h.shape()
        return Size(s) if dim is None else s[dim]

    @property
    def dtype(self):
        return _core._FROM_WIT[self._h.dtype()]

    @property
    def device(self):
        return device(self._h.device())

    @property
    def is_cuda(self):
        return self._h.device().startswith("cuda")

    @property
    def ndim(self):
        return len(self._h.shape())

    def dim(self):
        return len(self._h.shape())

    ndimension = dim

    def numel(self):
        return self._h.numel()

    nelement = numel

    @property
    def requires_grad(self):
        return self._h.requires_grad()

    @requires_grad.setter
    def requires_grad(self, value):
        _err(self._h.set_requires_grad, builtins.bool(value))

    def requires_grad_(self, requires_grad=True):
        _err(self._h.set_requires_grad, builtins.bool(requires_grad))
        return self

    @property
    def grad(self):
        d = self.__dict__
        if "_lt_grad" in d:  # a user optimizer's step: the host's accumulated gradient
            return d["_lt_grad"]
        g = self._h.grad()
        return None if g is None else wrap(g)

    @grad.setter
    def grad(self, value):
        _err(self._h.set_grad, None if value is None else value._h)

    @property
    def data(self):
        return direct("aten::detach", _core.T(self))

    @property
    def T(self):
        return direct("aten::permute", _core.T(self), _core.I(range(self.dim() - 1, -1, -1)))

    @property
    def mT(self):
        return direct("aten::transpose.int", _core.T(self), _core.Int(-2), _core.Int(-1))

    def is_floating_point(self):
        return self.dtype.is_floating_point

    def element_size(self):
        return self.dtype.itemsize

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if inputs is not None:
            raise NotImplementedError("Tensor.backward(inputs=...) is not supported by lthost")
        keep = create_graph if retain_graph is None else retain_graph
        _err(self._h.backward, None if gradient is None else gradient._h, builtins.bool(keep), builtins.bool(create_graph))

    # ---- values ----
    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        d = self.dtype
        if d.is_floating_point:
            return self._h.item()
        # Integers from their bytes: the host's `item` is a float64, which rounds an int64
        # past 2**53 (a seed drawn with `random_()`, as torch's samplers draw theirs).
        v = struct.unpack(f"<{_UNPACK[d.name]}", self.contiguous()._h.to_bytes()[: d.itemsize])[0]
        return builtins.bool(v) if d is _core.bool_ else v

    def tolist(self):
        d = self.dtype
        t = self
        if d is _core.bfloat16:
            t, d = self.float(), _core.float32
        data = t.contiguous()._h.to_bytes()
        flat = list(struct.unpack(f"<{len(data) // d.itemsize}{_UNPACK[d.name]}", data))
        shape = list(self.shape)
        if not shape:
            return flat[0]
        return _nest(flat, shape)

    def __repr__(self):
        extra = "" if self.dtype in (_core.float32, _core.int64, _core.bool_) else f", dtype={self.dtype}"
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({self.tolist()}{extra}{grad})"

    def __format__(self, spec):
        if self.dim() == 0:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def __bool__(self):
        return builtins.bool(self.item())

    def __float__(self):
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __index__(self):
        return builtins.int(self.item())

    def __len__(self):
        s = self._h.shape()
        if not s:
            raise TypeError("len() of a 0-d tensor")
        return s[0]

    def __iter__(self):
        return iter(call("unbind", (self, 0), {}))

    __hash__ = object.__hash__

    # ---- conversions ----
    def to(self, *args, **kwargs):
        target_dtype, target_device = kwargs.pop("dtype", None), kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        copy = kwargs.pop("copy", False)
        if kwargs:
            raise TypeError(f"Tensor.to() got unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, dtype):
                target_dtype = a
            elif isinstance(a, (str, device)):
                target_device = a
            elif isinstance(a, Tensor):
                target_dtype, target_device = a.dtype, a.device
        if target_dtype is None and target_device is None:
            return self
        dev = None if target_device is None else str(target_device)
        return call("to", (self,), {"dtype": target_dtype, "device": dev, "copy": builtins.bool(copy)})

    def type_as(self, other):
        return self.to(other.dtype)

    def float(self):
        return self.to(_core.float32)

    def double(self):
        return self.to(_core.float64)

    def half(self):
        return self.to(_core.float16)

    def bfloat16(self):
        return self.to(_core.bfloat16)

    def long(self):
        return self.to(_core.int64)

    def int(self):
        return self.to(_core.int32)

    def bool(self):
        return self.to(_core.bool_)

    def byte(self):
        return self.to(_core.uint8)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else f"cuda:{device}")

    def numpy(self):
        raise NotImplementedError("Tensor.numpy(): numpy is not available inside a plugin; use .tolist()")

    def type(self, dtype=None):
        if dtype is None:
            return f"torch.{ {'float32': 'FloatTensor', 'float64': 'DoubleTensor', 'int64': 'LongTensor', 'int32': 'IntTensor', 'bool': 'BoolTensor', 'uint8': 'ByteTensor', 'float16': 'HalfTensor', 'bfloat16': 'BFloat16Tensor'}[self.dtype.name]}"
        return self.to(dtype)

    def contiguous(self, memory_format=None):
        return direct("aten::contiguous", _core.T(self))

    # ---- shape helpers whose torch forms take varargs or Python-level logic ----
    def split(self, split_size_or_sections, dim=0):
        if isinstance(split_size_or_sections, (list, tuple)):
            return list(direct("aten::split_with_sizes", _core.T(self), _core.I(split_size_or_sections), _core.Int(dim)))
        return list(direct("aten::split.Tensor", _core.T(self), _core.Int(split_size_or_sections), _core.Int(dim)))

    def chunk(self, chunks, dim=0):
        return list(call("chunk", (self, chunks, dim), {}))

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
        """torch's: `_unique2` over all elements, `unique_dim` along `dim`; the values alone
        unless the inverse indices or counts are asked for."""
        if dim is None:
            values, inverse, counts = call("_unique2", (self, sorted, return_inverse, return_counts), {})
        else:
            values, inverse, counts = call("unique_dim", (self, dim, sorted, return_inverse, return_counts), {})
        if not (return_inverse or return_counts):
            return values
        return (values,) + ((inverse,) if return_inverse else ()) + ((counts,) if return_counts else ())

    def unbind(self, dim=0):
        return tuple(call("unbind", (self, dim), {}))

    def permute(self, *dims):
        return call("permute", (self, list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else list(dims)), {})

    def flip(self, *dims):
        return call("flip", (self, list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else list(dims)), {})

    def max(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return call("maximum", (self, dim), {})
        return call("max", (self,), {}) if dim is None else _named(call("max", (self, dim, keepdim), {}), "max")

    def min(self, dim=None, keepdim=False):
        if isinstance(dim, Tensor):
            return call("minimum", (self, dim), {})
        return call("min", (self,), {}) if dim is None else _named(call("min", (self, dim, keepdim), {}), "min")

    def sort(self, dim=-1, descending=False, stable=False):
        return _named(call("sort", (self,), {"dim": dim, "descending": descending, "stable": stable}), "sort")

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return _named(call("topk", (self, k, dim, largest, sorted), {}), "topk")

    def softmax(self, dim, dtype=None):
        return call("softmax", (self, dim), {"dtype": dtype})

    def log_softmax(self, dim, dtype=None):
        return call("log_softmax", (self, dim), {"dtype": dtype})

    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        from . import linalg

        if p == "fro" and dim is None:
            return linalg.vector_norm(self, 2)
        return linalg.vector_norm(self, 2 if p == "fro" else p, dim, keepdim)

    def __getitem__(self, index):
        from ._indexing import getitem

        return getitem(self, index)

    def __setitem__(self, index, value):
        from ._indexing import setitem

        setitem(self, index, value)

    # ---- operators ----
    def __add__(self, other):
        return call("add", (self, other), {})

    __radd__ = __add__

    def __iadd__(self, other):
        return call("add_", (self, other), {})

    def __sub__(self, other):
        return call("sub", (self, other), {})

    def __rsub__(self, other):
        return call("rsub", (self, other), {})

    def __isub__(self, other):
        return call("sub_", (self, other), {})

    def __mul__(self, other):
        return call("mul", (self, other), {})

    __rmul__ = __mul__

    def __imul__(self, other):
        return call("mul_", (self, other), {})

    def __truediv__(self, other):
        return call("div", (self, other), {})

    def __rtruediv__(self, other):
        return direct("aten::reciprocal", _core.T(self)) * other

    def __itruediv__(self, other):
        return call("div_", (self, other), {})

    def __floordiv__(self, other):
        return call("floor_divide", (self, other), {})

    def __mod__(self, other):
        return call("remainder", (self, other), {})

    def __pow__(self, other):
        return call("pow", (self, other), {})

    def __rpow__(self, other):
        return call("pow", (other, self), {})

    def __matmul__(self, other):
        return direct("aten::matmul", _core.T(self), _core.T(other))

    def __rmatmul__(self, other):
        return direct("aten::matmul", _core.T(other), _core.T(self))

    def __neg__(self):
        return direct("aten::neg", _core.T(self))

    def __pos__(self):
        return self

    def __abs__(self):
        return direct("aten::abs", _core.T(self))

    def __invert__(self):
        return direct("aten::bitwise_not", _core.T(self))

    def __and__(self, other):
        return call("bitwise_and", (self, other), {})

    def __or__(self, other):
        return call("bitwise_or", (self, other), {})

    def __xor__(self, other):
        return call("bitwise_xor", (self, other), {})

    def __eq__(self, other):
        return call("eq", (self, other), {})

    def __ne__(self, other):
        return call("ne", (self, other), {})

    def __lt__(self, other):
        return call("lt", (self, other), {})

    def __le__(self, other):
        return call("le", (self, other), {})

    def __gt__(self, other):
        return call("gt", (self, other), {})

    def __ge__(self, other):
        return call("ge", (self, other), {})


_ValuesIndices = collections.namedtuple("return_types", ["values", "indices"])


def _named(values, _op):
    """torch.return_types: (values, indices) with named fields."""
    return _ValuesIndices(*values)


def _nest(flat, shape):
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _method(name):
    def m(self, *args, **kwargs):
        return call(name, (self, *args), kwargs)

    m.__name__ = name
    return m


for _name in _schemas.METHODS:
    if not hasattr(Tensor, _name):
        setattr(Tensor, _name, _method(_name))

_core.Tensor = Tensor
