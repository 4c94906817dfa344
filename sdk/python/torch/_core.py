"""The heart of the `torch` package: dtypes, devices, `torch.Size`, the `Tensor` wrapper around
a host tensor handle, and calling an ATen operator by torch's name with torch's argument
rules (overloads resolved by the argument types, as torch's Python argument parser does).

Every op runs in the host through libtorch's dispatcher (`lthost.aten`); an op's error is a
RuntimeError with torch's message."""

import builtins

from componentize_py_types import Err
from lthost import aten as _aten
from wit_world.imports import aten as _a
from wit_world.imports.tensor import Tensor as _Handle
from wit_world.imports.types import Dtype as _D

from . import _schemas


class dtype:
    """torch.dtype: `torch.float32`, `torch.int64`, ..."""

    __slots__ = ("name", "_wit", "is_floating_point", "itemsize", "is_signed")

    def __init__(self, name, wit, is_floating_point, itemsize, is_signed=True):
        self.name, self._wit, self.is_floating_point, self.itemsize, self.is_signed = name, wit, is_floating_point, itemsize, is_signed

    def __repr__(self):
        return f"torch.{self.name}"

    @property
    def is_complex(self):
        return False


float32 = dtype("float32", _D.FLOAT32, True, 4)
float64 = dtype("float64", _D.FLOAT64, True, 8)
float16 = dtype("float16", _D.FLOAT16, True, 2)
bfloat16 = dtype("bfloat16", _D.BFLOAT16, True, 2)
int64 = dtype("int64", _D.INT64, False, 8)
int32 = dtype("int32", _D.INT32, False, 4)
uint8 = dtype("uint8", _D.UINT8, False, 1, False)
bool_ = dtype("bool", _D.BOOLEAN, False, 1, False)
_FROM_WIT = {d._wit: d for d in (float32, float64, float16, bfloat16, int64, int32, uint8, bool_)}
_default_dtype = [float32]


class device:
    """torch.device("cpu"), torch.device("cuda", 0)."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        elif ":" in type:
            type, i = type.split(":", 1)
            index = int(i)
        self.type, self.index = type, index

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


class Size(tuple):
    """torch.Size: a tuple of ints."""

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return f"torch.Size({list(self)})"


class memory_format:
    __slots__ = ("name", "value")

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __repr__(self):
        return f"torch.{self.name}"


contiguous_format = memory_format("contiguous_format", 0)
preserve_format = memory_format("preserve_format", 1)
channels_last = memory_format("channels_last", 2)
channels_last_3d = memory_format("channels_last_3d", 3)


class layout:
    __slots__ = ("name", "value")

    def __init__(self, name, value):
        self.name, self.value = name, value


strided = layout("strided", 0)


def read_as_none(self, attr):
    """`__getattr__` of what the file's `__main__` block makes while it runs in the plugin (a
    built-in callback, its trainer's attributes): what code before the block's stopping call
    reads of it (`checkpoint.best_model_path`) is None; the run never uses it."""
    if attr.startswith("__"):
        raise AttributeError(attr)
    return None


def unsupported(name, why, base=object, read_at_build=False):
    """A class standing for an API lthost does not provide: a file that imports it builds,
    and making one raises NotImplementedError naming it. `read_at_build`: Lightning's
    built-ins whose settings `lthost build` reads from the file's `__main__` block; while the
    block runs in the plugin (lightning/_block_run.py) making one does nothing."""

    def __init__(self, *args, **kwargs):
        if read_at_build and BLOCK_RUNNING[0]:
            return
        raise NotImplementedError(f"{name}: {why}")

    short = name.rsplit(".", 1)[-1]
    methods = {"__init__": __init__, "__qualname__": short}
    if read_at_build:  # made only while the block runs
        methods["__getattr__"] = read_as_none
    return type(short, (base,), methods)


# Whether the run has started (the component adapter sets it when the host first calls in):
# before, the file's top level runs at build time, with no host to call.
RUNNING = [False]
# Whether the file's `__main__` block is running in the plugin (lightning/_block_run.py).
BLOCK_RUNNING = [False]


# ---- wrapping host handles -------------------------------------------------------------

_new = object.__new__
Tensor = None  # set by _tensor.py (the class), before any op runs


def wrap(h):
    t = _new(Tensor)
    t._h = h
    return t


def _wrap_value(v):
    if isinstance(v, _Handle):
        return wrap(v)
    if isinstance(v, list):
        return [wrap(x) if isinstance(x, _Handle) else x for x in v]
    return v


def _result(values):
    if len(values) == 1:
        return _wrap_value(values[0])
    if not values:
        return None
    return tuple(_wrap_value(v) for v in values)


# ---- arguments -------------------------------------------------------------------------

_NONE = _a.Arg_None_()
_number = (builtins.int, builtins.float, builtins.bool)


def _is_int(v):
    return isinstance(v, builtins.int) and not isinstance(v, builtins.bool)


def _tensor_arg(v):
    return _a.Arg_Tensor(v._h)


def _scalar_arg(v):
    if isinstance(v, builtins.bool):
        return _TRUE if v else _FALSE
    if isinstance(v, builtins.int):
        a = _INTS.get(v)
        return _a.Arg_Int(v) if a is None else a
    return _a.Arg_Float(builtins.float(v))


def _ints(v):
    out = []
    for x in v:
        if isinstance(x, Tensor):
            x = x.item()
        if not _is_int(x):
            return None
        out.append(x)
    return out


def convert(code, v, optional, lenient):
    """`v` as the argument of type `code`, or None when it does not fit."""
    if v is None:
        return _NONE if optional else None
    if code == "T":
        if isinstance(v, Tensor):
            return v._h
        if lenient and isinstance(v, _number):
            return _scalar_arg(v)  # a wrapped number, as torch makes one
        return None
    if code == "S":
        if isinstance(v, _number):
            return _scalar_arg(v)
        if lenient and isinstance(v, Tensor) and v.dim() == 0:
            return _scalar_arg(v.item())
        return None
    if code == "i":
        if _is_int(v):
            a = _INTS.get(v)
            return _a.Arg_Int(v) if a is None else a
        if isinstance(v, (memory_format, layout)):
            return _a.Arg_Int(v.value)
        if lenient and isinstance(v, Tensor) and v.dim() == 0:
            return _a.Arg_Int(builtins.int(v.item()))
        return None
    if code == "f":
        if isinstance(v, (builtins.int, builtins.float)) and not isinstance(v, builtins.bool):
            return _a.Arg_Float(builtins.float(v))
        if lenient and isinstance(v, Tensor) and v.dim() == 0:
            return _a.Arg_Float(v.item())
        return None
    if code == "b":
        return (_TRUE if v else _FALSE) if isinstance(v, builtins.bool) else None
    if code == "d":
        return _a.Arg_Dtype(v._wit) if isinstance(v, dtype) else None
    if code == "s":
        if isinstance(v, (str, device)):
            return _a.Arg_Str(str(v))
        return None
    if code == "I":
        if isinstance(v, (list, tuple)):
            xs = _ints(v)
            return None if xs is None else _a.Arg_Ints(xs)
        if _is_int(v):
            return _a.Arg_Int(v) if lenient else None
        return None
    if code == "F":
        if isinstance(v, (list, tuple)) and all(isinstance(x, (builtins.int, builtins.float)) for x in v):
            return _a.Arg_Floats([builtins.float(x) for x in v])
        if isinstance(v, (builtins.int, builtins.float)) and not isinstance(v, builtins.bool):
            return _a.Arg_Floats([builtins.float(v)])
        return None
    if code == "B":
        if isinstance(v, (list, tuple)) and all(isinstance(x, builtins.bool) for x in v):
            return _a.Arg_Bools(list(v))
        return None
    if code in "LO":
        if isinstance(v, (list, tuple)):
            hs = []
            for x in v:
                if isinstance(x, Tensor):
                    hs.append(x._h)
                elif x is None and code == "O":
                    hs.append(None)
                else:
                    return None
            return _a.Arg_Tensors(hs)
        return None
    return None


class _Overload:
    """One schema, prepared for binding Python arguments."""

    __slots__ = ("qual", "positional", "by_name", "required", "need", "inplace", "one")

    def __init__(self, qual, params, one):
        self.qual = qual
        self.one = one
        self.positional = [p for p in params if not p[2]]
        self.by_name = {p[0]: p for p in params}
        self.required = [p[0] for p in params if not p[3]]
        # How many positional arguments a call without keywords needs (more than it can
        # take when a keyword-only parameter is required).
        self.need = max([i + 1 for i, p in enumerate(self.positional) if not p[3]], default=0)
        if any(p[2] and not p[3] for p in params):
            self.need = len(self.positional) + 1
        base = qual[len("aten::") :].split(".")[0]
        self.inplace = base.endswith("_") and not base.endswith("__")

    def bind(self, args, kwargs, lenient):
        pos = self.positional
        n = len(args)
        if n > len(pos):
            # torch's varargs for a size: `x.view(2, 3)`, `torch.zeros(2, 3)`.
            k = n - 1
            while k >= 0 and _is_int(args[k]):
                k -= 1
            k += 1
            if k >= len(pos) or pos[k][1] != "I" or any(not p[3] for p in pos[k + 1 :]):
                return None
            args = (*args[:k], list(args[k:]))
            n = len(args)
        out = []
        for p, v in zip(pos, args):
            a = convert(p[1], v, p[4], lenient)
            if a is None:
                return None
            out.append(a)
        if not kwargs:
            return (out, ()) if n >= self.need else None
        kw = []
        for name, v in kwargs.items():
            p = self.by_name.get(name)
            if p is None:
                return None
            if not p[2] and pos.index(p) < n:
                return None
            a = convert(p[1], v, p[4], lenient)
            if a is None:
                return None
            kw.append((name, a))
        given = n
        for name in self.required:
            p = self.by_name[name]
            if not p[2] and pos.index(p) < given:
                continue
            if name not in kwargs:
                return None
        return out, kw


_overloads = {}


def overloads(name):
    o = _overloads.get(name)
    if o is None:
        table = _schemas.OPS.get(name)
        if table is None:
            return None
        o = _overloads[name] = [_Overload(q, p, one) for q, p, one in table]
    return o


def _describe(args, kwargs):
    parts = [type(a).__name__ if not isinstance(a, (list, tuple)) else f"{type(a).__name__} of {', '.join(sorted({type(x).__name__ for x in a}))}" for a in args]
    parts += [f"{k}={type(v).__name__}" for k, v in kwargs.items()]
    return ", ".join(parts)


# ---- calling an operator ----------------------------------------------------------------
# Arguments are converted values: a tensor is its host handle, anything else an `Arg`. An
# operator returning one tensor is called by its index in the host's table, the cheapest
# calls componentize-py makes: tensors alone (one to three) pass as handles, up to four
# arguments of any kind flat, more as a list.

_index = {}
_try_unary, _try_binary, _try_ternary, _try_flat, _try_method = _a.try_unary, _a.try_binary, _a.try_ternary, _a.try_flat, _a.try_method
_Arg_Tensor = _a.Arg_Tensor
_PAD = ((_NONE,) * 4, (_NONE,) * 3, (_NONE,) * 2, (_NONE,), ())


def _op_index(qual):
    if _aten.BUILDING[0]:
        _aten.refuse_at_build(qual)
    try:
        i = _index[qual] = _a.index(qual)
    except Err as e:
        raise RuntimeError(e.value) from None
    return i


def _lifted(args):
    """Converted values as the `Arg`s a list call takes (a tensor's handle as an Arg)."""
    return [_Arg_Tensor(v) if type(v) is _Handle else v for v in args]


def run(qual, args, kwargs):
    """Calls the resolved operator `qual` with converted arguments: its wrapped result(s)."""
    try:
        out = _aten.op(qual).call(_lifted(args), [(k, _Arg_Tensor(v) if type(v) is _Handle else v) for k, v in kwargs])
    except Err as e:
        raise RuntimeError(e.value) from None
    return _result([None if isinstance(v, _a.Value_None_) else v.value for v in out])


def run_one(qual, args, kwargs=()):
    """As `run`, for an operator that returns one tensor."""
    n = len(args)
    try:
        if kwargs or n > 4:
            h = _aten.op(qual).call_tensor(_lifted(args), [(k, _Arg_Tensor(v) if type(v) is _Handle else v) for k, v in kwargs])
        else:
            i = _index.get(qual)
            if i is None:
                i = _op_index(qual)
            if n == 1 and type(args[0]) is _Handle:
                h = _try_unary(i, args[0])
            elif n == 2 and type(args[0]) is _Handle and type(args[1]) is _Handle:
                h = _try_binary(i, args[0], args[1])
            elif n == 3 and type(args[0]) is _Handle and type(args[1]) is _Handle and type(args[2]) is _Handle:
                h = _try_ternary(i, args[0], args[1], args[2])
            elif n and type(args[0]) is _Handle:
                h = _try_method(i, n, args[0], *[_Arg_Tensor(v) if type(v) is _Handle else v for v in args[1:]], *_PAD[n])
            else:
                h = _try_flat(i, n, *[_Arg_Tensor(v) if type(v) is _Handle else v for v in args], *_PAD[n])
            if h is None:
                raise RuntimeError(_a.last_error())
    except Err as e:
        raise RuntimeError(e.value) from None
    t = _new(Tensor)
    t._h = h
    return t


_returns_one = {}


def _one(qual):
    """Whether operator `qual` returns one tensor."""
    one = _returns_one.get(qual)
    if one is None:
        table = _schemas.OPS.get(qual[len("aten::") :].split(".")[0], ())
        one = _returns_one[qual] = any(q == qual and o for q, _, o in table)
    return one


# The overload torch's rules chose (and whether with their conversions), by what decided
# it: the operator's name and the arguments' types (keyword names and types after the
# positional ones). Where a list is among them its items' types decide too: the types alone
# then map to `_BY_ITEMS`.
_chosen = {}
_BY_ITEMS = object()


def _items_key(key, args, kwargs):
    """`key` with each list's item types, or None when a list holds a tensor (whose value
    decides whether it is an int)."""
    parts = []
    for v in (*args, *kwargs.values()):
        if isinstance(v, (list, tuple)):
            items = tuple(map(type, v))
            if any(issubclass(t, Tensor) for t in items):
                return None
            parts.append(items)
    return (*key, *parts)


def _plan(o, args):
    """How the exact pass converts `args` (no keywords) for overload `o`, for later calls
    with the same types: a letter per argument (`h` a tensor's handle, `i` an int, `f` a
    float, `b` a bool, `n` None) and where torch's trailing size ints start (-1: none);
    None when an argument needs more than these."""
    pos = o.positional
    pack = -1
    if len(args) > len(pos):  # `x.view(2, 3)`: as `bind` packs them
        pack = len(args)
        while pack > 0 and _is_int(args[pack - 1]):
            pack -= 1
        args = args[:pack]
    kinds = []
    for p, v in zip(pos, args):
        code, t = p[1], type(v)
        if v is None:
            kinds.append("n")
        elif code == "T" and isinstance(v, Tensor):
            kinds.append("h")
        elif t is builtins.bool and code in "SbT":  # T: a number for a tensor (torch's wrapping)
            kinds.append("b")
        elif t is builtins.int and code in "SiTI":  # I: one int for a list of ints
            kinds.append("i")
        elif (t is builtins.float and code in "SfT") or (t is builtins.int and code == "f"):
            kinds.append("f")
        else:
            return None
    return "".join(kinds), pack


def _typed_only(ovs, args, kwargs):
    """Whether torch's conversions, trying overloads `ovs`, looked at no tensor's value: no
    tensor among the arguments was offered where a number goes (a 0-dim one fits there)."""
    for o in ovs:
        pos = o.positional
        for i, v in enumerate(args):
            if isinstance(v, Tensor) and i < len(pos) and pos[i][1] != "T":
                return False
        for k, v in kwargs.items():
            if isinstance(v, Tensor) and k in o.by_name and o.by_name[k][1] != "T":
                return False
    return True


def call(name, args, kwargs):
    """torch's `name(*args, **kwargs)` on ATen: the first overload the arguments fit exactly,
    else the first they fit with torch's conversions (a number for a tensor, a 0-dim tensor
    for a number, one int for a list of ints)."""
    if kwargs:
        if "generator" in kwargs:  # a torch.Generator: the op draws from its state
            kwargs = dict(kwargs)
            g = kwargs.pop("generator")
            if g is not None:
                with g._drawing():
                    return call(name, args, kwargs)
        key = (name, *map(type, args), *kwargs, *map(type, kwargs.values()))
    else:
        key = (name, *map(type, args))
    hit = _chosen.get(key)
    if hit is _BY_ITEMS:
        items = _items_key(key, args, kwargs)
        hit = None if items is None else _chosen.get(items)
    if hit is not None:
        o, plan, lenient = hit
        if plan is not None:  # converted as the plan says, with no Python call per argument
            kinds, pack = plan
            out = []
            for k, v in zip(kinds, args):
                if k == "h":
                    out.append(v._h)
                elif k == "i":
                    a = _INTS.get(v)
                    out.append(_a.Arg_Int(v) if a is None else a)
                elif k == "n":
                    out.append(_NONE)
                elif k == "f":
                    out.append(_a.Arg_Float(builtins.float(v)))
                else:
                    out.append(_TRUE if v else _FALSE)
            if pack >= 0:
                out.append(_a.Arg_Ints(list(args[pack:])))
            r = run_one(o.qual, out) if o.one else run(o.qual, out, ())
            return args[0] if o.inplace and args and isinstance(args[0], Tensor) else r
        bound = o.bind(args, kwargs, lenient)
        if bound is not None:
            return _run_bound(o, args, bound)
    ovs = overloads(name)
    if ovs is None:
        raise AttributeError(f"torch has no operator {name!r} that plugins may call")
    for lenient in (False, True):
        for idx, o in enumerate(ovs):
            bound = o.bind(args, kwargs, lenient)
            if bound is not None:
                if len(_chosen) < 8192 and (not lenient or _typed_only(ovs[: idx + 1], args, kwargs)):
                    if any(isinstance(v, (list, tuple)) for v in (*args, *kwargs.values())):
                        _chosen[key] = _BY_ITEMS
                        key = _items_key(key, args, kwargs)
                    if key is not None:
                        _chosen[key] = (o, None if kwargs else _plan(o, args), lenient)
                return _run_bound(o, args, bound)
    expected = "\n".join(f"  {o.qual}({', '.join(p[0] for p in o.by_name.values())})" for o in ovs)
    raise TypeError(f"{name}() received an invalid combination of arguments - got ({_describe(args, kwargs)}), expected one of:\n{expected}")


def _run_bound(o, args, bound):
    r = run_one(o.qual, bound[0], bound[1]) if o.one else run(o.qual, bound[0], bound[1])
    if o.inplace and args and isinstance(args[0], Tensor):
        return args[0]
    return r


def direct(qual, *args):
    """Calls operator `qual` with already converted positional arguments (the hot paths)."""
    one = _returns_one.get(qual)
    if one or (one is None and _one(qual)):
        return run_one(qual, args)
    return run(qual, args, ())


def T(t):
    return t._h


def I(xs):
    return _a.Arg_Ints(list(xs))


def F(x):
    return _a.Arg_Float(builtins.float(x))


# Arguments are never changed once made: the common ones are made once.
_INTS = {i: _a.Arg_Int(i) for i in range(-128, 1025)}
_TRUE, _FALSE = _a.Arg_Boolean(True), _a.Arg_Boolean(False)


def Int(x):
    a = _INTS.get(x)
    return _a.Arg_Int(builtins.int(x)) if a is None else a


def B(x):
    return _TRUE if x else _FALSE


def S(x):
    return _scalar_arg(x)


NONE = _NONE


def opt_T(t):
    return _NONE if t is None else t._h
