"""Every allowed ATen operator, from Python: `aten.call("aten::masked_fill.Scalar", x, mask,
0.0)` resolves the operator once and calls it through libtorch's dispatcher in the host,
with autograd. An operator's error is a RuntimeError with torch's message, which the plugin
can catch as torch code does; uncaught, the hook fails naming the plugin, the hook and the
operator. `no_grad()`, `enable_grad()` and `inference_mode()` are torch's context managers.

Typed, generated from torch's schemas (`aten_ops.py`, the Rust SDK's names): every operator
is also a function here, `aten.masked_fill_scalar(x, mask, 0)`, `aten.sum_dim_intlist(x, [1],
keepdim=True)`, each argument converted to the type its schema declares.
"""

import contextlib

from componentize_py_types import Err

from . import _handles  # noqa: F401  (host handles dropped without a weakref.finalize each)
from wit_world.imports import aten as _a
from wit_world.imports.tensor import Tensor
from wit_world.imports.types import Dtype

_ops = {}
# Whether `lthost build` is importing the user's file (lightning/_script.py): its top level
# runs then, with no host behind the imports, so an operator is refused with an error that
# names it, raised at the file's line, instead of a trap.
BUILDING = [False]


def refuse_at_build(what):
    """Raises the error for a tensor made while `lthost build` imports the file."""
    raise RuntimeError(f"{what} at build time: `lthost build` runs the file's top level (imports, classes, constants) "
                       f"before any run, and no tensor exists then; make tensors in the LightningModule's or the "
                       f"LightningDataModule's methods, or in the training code (`trainer.fit(...)` and what it is "
                       f"given, at the top level or under `if __name__ == \"__main__\":`)")


def op(name):
    """The resolved operator `name` (`aten::name` or `aten::name.overload`)."""
    o = _ops.get(name)
    if o is None:
        if BUILDING[0]:
            refuse_at_build(name)
        try:
            o = _ops[name] = _a.Op.resolve(name)
        except Err as e:
            raise RuntimeError(e.value) from None
    return o


def _arg(v):
    if v is None:
        return _a.Arg_None_()
    if isinstance(v, Tensor):
        return _a.Arg_Tensor(v)
    if isinstance(v, bool):
        return _a.Arg_Boolean(v)
    if isinstance(v, int):
        return _a.Arg_Int(v)
    if isinstance(v, float):
        return _a.Arg_Float(v)
    if isinstance(v, str):
        return _a.Arg_Str(v)
    if isinstance(v, Dtype):
        return _a.Arg_Dtype(v)
    if isinstance(v, (list, tuple)):
        if any(x is None or isinstance(x, Tensor) for x in v):
            return _a.Arg_Tensors(list(v))
        if v and all(isinstance(x, bool) for x in v):
            return _a.Arg_Bools(list(v))
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return _a.Arg_Ints(list(v))
        return _a.Arg_Floats([float(x) for x in v])
    raise TypeError(f"an operator argument cannot be a {type(v).__name__}")


def _value(v):
    if isinstance(v, _a.Value_None_):
        return None
    return v.value


# A parameter left to the operator's default (not passed to the host).
DEFAULT = type("Default", (), {"__repr__": lambda self: "DEFAULT"})()

def _ints(v):
    return _a.Arg_Ints([int(x) for x in v]) if isinstance(v, (list, tuple)) else _arg(v)  # one int: `int[N]`


def _floats(v):
    return _a.Arg_Floats([float(x) for x in v] if isinstance(v, (list, tuple)) else [float(v)])


# Per type code (tools/gen_ops_sdks.py), how a value becomes the argument the schema declares.
_TYPED = {
    "f": lambda v: _a.Arg_Float(float(v)),
    "i": lambda v: _arg(v) if isinstance(v, Dtype) else _a.Arg_Int(int(v)),
    "b": lambda v: _a.Arg_Boolean(bool(v)),
    "F": _floats,
    "I": _ints,
    "B": lambda v: _a.Arg_Bools([bool(x) for x in v]),
    "L": lambda v: _a.Arg_Tensors(list(v)),
    "O": lambda v: _a.Arg_Tensors(list(v)),
}


def _typed_arg(code, v):
    """`v` as the schema's type `code` says."""
    if v is None:
        return _a.Arg_None_()
    if code == "T" and isinstance(v, Tensor):
        return _a.Arg_Tensor(v)
    convert = _TYPED.get(code)
    return _arg(v) if convert is None else convert(v)


def _run(name, args, kwargs):
    """Operator `name`'s results for converted arguments; torch's error as a RuntimeError."""
    try:
        out = op(name).call(args, kwargs)
    except Err as e:
        raise RuntimeError(e.value) from None
    return [_value(v) for v in out]


def typed_call(name, codes, args, kwargs):
    """Calls generated operator `name`: positional `args` of types `codes`, and the named
    `(name, code, value)` in `kwargs` that are not DEFAULT. Its result (a tuple when it has
    several, None when none)."""
    a = [_typed_arg(c, v) for c, v in zip(codes, args)]
    values = _run(name, a, [(k, _typed_arg(c, v)) for k, c, v in kwargs if v is not DEFAULT])
    return values[0] if len(values) == 1 else (None if not values else tuple(values))


def call(name, *args, **kwargs):
    """Calls operator `name`: its result (a tuple when it has several)."""
    values = _run(name, [_arg(x) for x in args], [(k, _arg(x)) for k, x in kwargs.items()])
    return values[0] if len(values) == 1 else tuple(values)


@contextlib.contextmanager
def _grad_mode(enabled):
    prev = _a.set_grad_enabled(enabled)
    try:
        yield
    finally:
        _a.set_grad_enabled(prev)


def no_grad():
    """torch.no_grad()."""
    return _grad_mode(False)


def enable_grad():
    """torch.enable_grad()."""
    return _grad_mode(True)


@contextlib.contextmanager
def inference_mode(mode=True):
    """torch.inference_mode(mode)."""
    _a.push_inference_mode(mode)
    try:
        yield
    finally:
        _a.pop_inference_mode()


def raise_(op_name, message):
    """Ends the hook with `message` as operator `op_name`'s error (an uncaught RuntimeError)."""
    _a.raise_(op_name, message)


def is_grad_enabled():
    return _a.is_grad_enabled()


# Imported when the component is built (its heap is snapshotted then), after what it uses.
from . import aten_ops as _typed  # noqa: E402


def __getattr__(name):
    """The generated, typed operators (`aten_ops.py`) as attributes of this module, without
    their names (`all`, `any`, `float`...) shadowing Python's own here."""
    try:
        return getattr(_typed, name)
    except AttributeError:
        raise AttributeError(f"module 'lthost.aten' has no attribute {name!r}") from None
