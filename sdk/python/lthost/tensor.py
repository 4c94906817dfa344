"""Tensor methods and operators, added to the WIT `tensor` resource (torch's names)."""

import struct

from wit_world.imports import tensor as _t
from wit_world.imports.types import Dtype

Tensor = _t.Tensor
U, B, C, R = _t.UnaryOp, _t.BinaryOp, _t.CompareOp, _t.ReduceOp

_KIND = {float: Dtype.FLOAT32, int: Dtype.INT64, bool: Dtype.BOOLEAN}


def tensor(data, dtype=None):
    """A host tensor from a (nested) list of numbers, like torch.tensor."""
    shape, flat = [], data
    while isinstance(flat, (list, tuple)):
        shape.append(len(flat))
        flat = flat[0] if flat else 0.0
    values = _flatten(data)
    dtype = dtype or _KIND.get(type(flat), Dtype.FLOAT32)
    if dtype == Dtype.INT64:
        return Tensor.from_bytes(struct.pack(f"<{len(values)}q", *values), dtype, shape)
    return Tensor.from_bytes(struct.pack(f"<{len(values)}f", *values), Dtype.FLOAT32, shape).to_dtype(dtype)


def _flatten(x):
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _flatten(item)]
    return [x]


def _binary(op, reverse=False):
    def f(self, other):
        if isinstance(other, Tensor):
            return other.binary(op, self) if reverse else self.binary(op, other)
        if reverse:
            # torch's promotion: a float scalar against an integer or bool tensor is float.
            dtype = self.dtype()
            if isinstance(other, float) and dtype not in (Dtype.FLOAT32, Dtype.FLOAT64, Dtype.FLOAT16, Dtype.BFLOAT16):
                dtype = Dtype.FLOAT32
            return Tensor.full([], float(other), dtype).binary(op, self)
        return self.binary_scalar(op, float(other))

    return f


def _compare(op):
    def f(self, other):
        return self.compare(op, other) if isinstance(other, Tensor) else self.compare_scalar(op, float(other))

    return f


def _reduce(op):
    def f(self, dim=None, keepdim=False):
        dims = [] if dim is None else ([dim] if isinstance(dim, int) else list(dim))
        return self.reduce(op, dims, keepdim)

    return f


_argmax, _argmin, _squeeze = Tensor.argmax, Tensor.argmin, Tensor.squeeze

_METHODS = {
    "relu": lambda self: self.unary(U.RELU),
    "gelu": lambda self: self.unary(U.GELU),
    "tanh": lambda self: self.unary(U.TANH),
    "sigmoid": lambda self: self.unary(U.SIGMOID),
    "exp": lambda self: self.unary(U.EXP),
    "log": lambda self: self.unary(U.LOG),
    "sqrt": lambda self: self.unary(U.SQRT),
    "abs": lambda self: self.unary(U.ABS),
    "square": lambda self: self.unary(U.SQUARE),
    "detach": lambda self: self.unary(U.DETACH),
    "clone": lambda self: self.unary(U.CLONE),
    "float": lambda self: self.to_dtype(Dtype.FLOAT32),
    "long": lambda self: self.to_dtype(Dtype.INT64),
    "to": lambda self, dtype: self.to_dtype(dtype),
    "size": lambda self, dim=None: self.shape() if dim is None else self.shape()[dim],
    "dim": lambda self: len(self.shape()),
    "tolist": lambda self: self.to_i64_list() if self.dtype() == Dtype.INT64 else self.to_f32_list(),
    "eq": _compare(C.EQ),
    "sum": _reduce(R.SUM),
    "mean": _reduce(R.MEAN),
    "max": _reduce(R.MAX),
    "min": _reduce(R.MIN),
    "std": _reduce(R.STD),
    "argmax": lambda self, dim, keepdim=False: _argmax(self, dim, keepdim),
    "argmin": lambda self, dim, keepdim=False: _argmin(self, dim, keepdim),
    "squeeze": lambda self, dim=None: _squeeze(self, dim),
    "__add__": _binary(B.ADD),
    "__radd__": _binary(B.ADD, True),
    "__sub__": _binary(B.SUB),
    "__rsub__": _binary(B.SUB, True),
    "__mul__": _binary(B.MUL),
    "__rmul__": _binary(B.MUL, True),
    "__truediv__": _binary(B.DIV),
    "__rtruediv__": _binary(B.DIV, True),
    "__pow__": _binary(B.POW),
    "__neg__": lambda self: self.unary(U.NEG),
    "__matmul__": lambda self, other: self.matmul(other),
    "__lt__": _compare(C.LT),
    "__le__": _compare(C.LE),
    "__gt__": _compare(C.GT),
    "__ge__": _compare(C.GE),
    "__float__": lambda self: self.item(),
}

for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
