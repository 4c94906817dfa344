"""`torch` inside an lthost plugin: torch's Python API over the host's libtorch. Tensors are
handles to host tensors; every op is an ATen operator run by libtorch's dispatcher in the
host (autograd, dtype promotion, views and in-place semantics are torch's own). `torch.nn`,
`torch.optim`, `torch.utils.data` are here too; what is not supported raises an error
naming the API."""

import builtins
import contextlib
import functools
import struct

from componentize_py_types import Err
from lthost import aten as _aten
from wit_world.imports.tensor import Tensor as _Handle

from . import _core, _schemas
from ._core import (
    Size,
    bfloat16,
    channels_last,
    contiguous_format,
    device,
    dtype,
    float16,
    float32,
    float64,
    int32,
    int64,
    layout,
    memory_format,
    preserve_format,
    strided,
    uint8,
)
from ._tensor import Tensor

bool = _core.bool_  # noqa: A001  (torch.bool)
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001

__version__ = "2.13.0"


class _GradMode:
    """A grad-mode scope, usable as a context manager and as a decorator (with or without
    parentheses, as torch's)."""

    _enabled = True

    def __new__(cls, orig_func=None):
        if orig_func is not None and callable(orig_func):
            return cls()(orig_func)
        return super().__new__(cls)

    def __init__(self, orig_func=None):
        self.prev = []

    def __enter__(self):
        self.prev.append(_aten._a.set_grad_enabled(self._enabled))
        return self

    def __exit__(self, *exc):
        _aten._a.set_grad_enabled(self.prev.pop())
        return False

    def __call__(self, fn):
        mode = type(self)

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with mode():
                return fn(*args, **kwargs)

        return wrapped


class no_grad(_GradMode):
    _enabled = False


class enable_grad(_GradMode):
    _enabled = True


class set_grad_enabled:
    """torch.set_grad_enabled(mode): sets the mode at once (a plain call), and as a context
    manager or decorator puts the previous mode back afterwards."""

    def __init__(self, mode):
        self.mode = builtins.bool(mode)
        self.prev = _aten._a.set_grad_enabled(self.mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _aten._a.set_grad_enabled(self.prev)
        return False

    def __call__(self, fn):
        _aten._a.set_grad_enabled(self.prev)  # a decorator: the mode applies inside calls only
        mode = self.mode

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapped


class inference_mode:
    def __new__(cls, mode=True):
        if callable(mode):
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = mode

    def __enter__(self):
        _aten._a.push_inference_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _aten._a.pop_inference_mode()
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)

        return wrapped


def is_grad_enabled():
    return _aten._a.is_grad_enabled()


def is_tensor(obj):
    return isinstance(obj, Tensor)


def get_default_dtype():
    # The host's: float32, or a true precision's dtype in the steps and configure_model.
    if not _core.RUNNING[0]:
        return float32
    return _core._FROM_WIT[_aten._a.default_dtype()]


def set_default_dtype(d):
    if d is not float32:
        raise NotImplementedError("torch.set_default_dtype: lthost plugins use float32 as the default dtype")


def manual_seed(seed):
    """torch.manual_seed: reseeds the run's generator (a DataLoader worker's own in a worker),
    from a hook or the module's `__init__` on. At build time (a call at the file's top level)
    there is no run yet: the run's seed is lthost's `--seed`, and the call says so."""
    seed = builtins.int(seed)
    if not (-(1 << 63) <= seed < (1 << 64)):
        raise RuntimeError(f"Overflow when unpacking long: {seed}")
    if not _core.RUNNING[0]:
        import sys

        print(f"torch.manual_seed({seed}) at build time does not seed the run: its seed is lthost's --seed", file=sys.stderr)
        return None
    _aten._a.manual_seed(seed & ((1 << 64) - 1))
    return None


def initial_seed():
    """torch.initial_seed: the seed of the generator random ops draw from (the run's, or in a
    DataLoader worker its own: base seed + id, or what it was last seeded with), read from the
    first 8 bytes of its state as torch keeps it there."""
    if not _core.RUNNING[0]:
        raise RuntimeError("torch.initial_seed() at build time (the file's top level): the run's seed is lthost's --seed")
    return builtins.int.from_bytes(builtins.bytes(_aten._a.get_rng_state()[:8]), "little")


def seed():
    raise NotImplementedError("torch.seed() (a nondeterministic seed): a run's numbers come from its seed; use torch.manual_seed")


# ---- settings a Lightning file makes ---------------------------------------------------------
# Kept and read back; the host runs libtorch's defaults (its own thread count, no
# deterministic-algorithm checks), and a setting that would differ says so. The float32
# matmul precision is applied, as torch applies it: libtorch's global setting for the run.

_settings = {"float32_matmul_precision": "highest", "deterministic": False}


def set_float32_matmul_precision(precision):
    if precision not in ("highest", "high", "medium"):
        import sys

        print(f"warning: {precision} is not one of 'highest', 'high', or 'medium'; the call has no effect (torch's)", file=sys.stderr)
        return
    _settings["float32_matmul_precision"] = precision
    if _core.RUNNING[0]:
        _aten._a.set_float32_matmul_precision(precision)


def _apply_settings():
    """As the run starts: the settings the file made at build time (its top level) applied."""
    if _settings["float32_matmul_precision"] != "highest":
        _aten._a.set_float32_matmul_precision(_settings["float32_matmul_precision"])


def get_float32_matmul_precision():
    return _settings["float32_matmul_precision"]


def use_deterministic_algorithms(mode, *, warn_only=False):
    if mode:
        from .backends import _note

        _note("torch.use_deterministic_algorithms", builtins.bool(mode))
    _settings["deterministic"] = builtins.bool(mode)


def are_deterministic_algorithms_enabled():
    return _settings["deterministic"]


def set_num_threads(n):
    """The run's libtorch threads are lthost's (`--threads`): a file's call leaves them."""
    from .backends import _note

    _note("torch.set_num_threads", n, "the run's threads are lthost's --threads")


def compile(model=None, **kwargs):  # noqa: A001
    """torch.compile: lthost runs the model as written (eagerly); as a decorator too. A module
    comes back wrapped as torch wraps it (`_dynamo.eval_frame.OptimizedModule`), so its names
    and checkpoint keys are torch's (`_orig_mod.`); a function comes back as it is."""
    if model is None:
        return lambda m: compile(m, **kwargs)
    if isinstance(model, nn.Module):
        return _dynamo.eval_frame.OptimizedModule(model)
    return model


# ---- making tensors ----------------------------------------------------------------------

_PACK = {"float32": "f", "float64": "d", "float16": "e", "int64": "q", "int32": "i", "uint8": "B", "bool": "?"}


def _flatten(data, shape, depth, out):
    if isinstance(data, Tensor):
        data = data.tolist()
    if isinstance(data, (list, tuple)):
        if len(shape) == depth:
            shape.append(len(data))
        elif shape[depth] != len(data):
            raise ValueError(f"expected sequence of length {shape[depth]} at dim {depth} (got {len(data)})")
        for x in data:
            _flatten(x, shape, depth + 1, out)
    else:
        out.append(data)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """torch.tensor: a new tensor from numbers or (nested) lists of them."""
    if isinstance(data, Tensor):
        t = data.detach().clone()
        if dtype is not None:
            t = t.to(dtype)
    else:
        shape, flat = [], []
        _flatten(data, shape, 0, flat)
        if dtype is None:
            if flat and builtins.all(isinstance(x, builtins.bool) for x in flat):
                dtype = bool
            elif flat and builtins.all(isinstance(x, builtins.int) for x in flat):
                dtype = int64
            else:
                dtype = get_default_dtype()
        make = bfloat16 if dtype is bfloat16 else None
        d = float32 if make else dtype
        if d.is_floating_point:
            flat = [builtins.float(x) for x in flat]
        elif d is bool:
            flat = [builtins.bool(x) for x in flat]
        else:
            flat = [builtins.int(x) for x in flat]
        if _aten.BUILDING[0]:
            _aten.refuse_at_build("torch.tensor")
        t = _core.wrap(_Handle.from_bytes(struct.pack(f"<{len(flat)}{_PACK[d.name]}", *flat), d._wit, shape))
        if make:
            t = t.to(make)
    if device is not None:
        t = t.to(device)
    if requires_grad:
        t.requires_grad_(True)
    return t


as_tensor = tensor


def _factory(name):
    def f(*args, requires_grad=False, **kwargs):
        if "device" in kwargs and kwargs["device"] is not None:
            kwargs["device"] = str(kwargs["device"])
        t = _core.call(name, args, kwargs)
        if requires_grad:
            t.requires_grad_(True)
        return t

    f.__name__ = name
    return f


def _function(name):
    def f(*args, **kwargs):
        return _core.call(name, args, kwargs)

    f.__name__ = name
    return f


_FACTORIES = {
    "zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange", "linspace", "logspace", "eye",
    "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "scalar_tensor",
}
for _name in _schemas.FUNCTIONS:
    if _name not in globals():
        globals()[_name] = _factory(_name) if _name in _FACTORIES else _function(_name)


def cat(tensors, dim=0):
    return _core.call("cat", (list(tensors), dim), {})


concat = concatenate = cat


def stack(tensors, dim=0):
    return _core.call("stack", (list(tensors), dim), {})


def split(tensor, split_size_or_sections, dim=0):
    return tensor.split(split_size_or_sections, dim)


def chunk(input, chunks, dim=0):
    return input.chunk(chunks, dim)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    return input.unique(sorted, return_inverse, return_counts, dim)


def max(input, dim=None, keepdim=False):  # noqa: A001
    return input.max(dim, keepdim) if not isinstance(dim, Tensor) else _core.call("maximum", (input, dim), {})


def min(input, dim=None, keepdim=False):  # noqa: A001
    return input.min(dim, keepdim) if not isinstance(dim, Tensor) else _core.call("minimum", (input, dim), {})


def sort(input, dim=-1, descending=False, stable=False):
    return input.sort(dim, descending, stable)


def topk(input, k, dim=-1, largest=True, sorted=True):
    return input.topk(k, dim, largest, sorted)


def softmax(input, dim, dtype=None):
    return input.softmax(dim, dtype)


def log_softmax(input, dim, dtype=None):
    return input.log_softmax(dim, dtype)


def numel(input):
    return input.numel()


def flatten(input, start_dim=0, end_dim=-1):
    return _core.call("flatten", (input, start_dim, end_dim), {})


def permute(input, dims):
    return input.permute(*dims)


def reshape(input, shape):
    return _core.call("reshape", (input, list(shape)), {})


def unbind(input, dim=0):
    return input.unbind(dim)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    return input.norm(p, dim, keepdim, dtype)


def where(condition, input=None, other=None):
    if input is None and other is None:
        return _core.call("nonzero_numpy", (condition,), {})
    return _core.call("where", (condition, input, other), {})


def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    return _core.call("einsum", (equation, list(operands)), {})


def from_numpy(_array):
    raise NotImplementedError("torch.from_numpy: numpy is not available inside a plugin; use torch.tensor(list)")


def load(path, map_location=None, weights_only=True):
    """torch.load of a safetensors file in the granted data directory (a dict of tensors)."""
    if _aten.BUILDING[0]:
        _aten.refuse_at_build(f"torch.load({path!r})")
    return {k: _core.wrap(v) for k, v in _Handle.load(path)}


# torch's seed of a new torch.Generator().
_DEFAULT_SEED = 67280421310721


def get_rng_state():
    """torch.get_rng_state: the CPU state of the generator random ops draw from (the run's, or
    a DataLoader worker's own), as a uint8 tensor."""
    return tensor(list(_aten._a.get_rng_state()), dtype=uint8)


def set_rng_state(new_state):
    """torch.set_rng_state: a state `get_rng_state` (or `Generator.get_state`) gave."""
    _set_state(bytes(new_state.tolist()))


def _set_state(state):
    try:
        _aten._a.set_rng_state(state)
    except Err as e:
        raise RuntimeError(e.value) from None


class Generator:
    """torch.Generator (CPU): a generator state of the plugin's own. Its draws (`generator=g`
    in random ops, `nn.init`, `random_split`) run on the generator random ops draw from, put in
    this state for them and read back after, so they are torch's and leave the run's
    generator where it was."""

    def __init__(self, device="cpu"):
        if str(device) != "cpu":
            raise NotImplementedError(f"torch.Generator(device={str(device)!r}): a plugin's generators are CPU ones")
        self.device = _core.device("cpu")
        self._seed, self._state = _DEFAULT_SEED, None

    def manual_seed(self, seed):
        self._seed, self._state = builtins.int(seed), None
        return self

    def initial_seed(self):
        return self._seed

    def seed(self):
        raise NotImplementedError("torch.Generator.seed() (a nondeterministic seed): use manual_seed")

    def get_state(self):
        return tensor(list(self._current()), dtype=uint8)

    def set_state(self, new_state):
        self._state = bytes(new_state.tolist())
        return self

    def _current(self):
        """Its state (a seeded one made the first time: torch.manual_seed's, in the host)."""
        if self._state is None:
            if not _core.RUNNING[0]:
                raise RuntimeError("a torch.Generator draws once the run has started, not at build time")
            saved = _aten._a.get_rng_state()
            _aten._a.manual_seed(self._seed & ((1 << 64) - 1))
            self._state = _aten._a.get_rng_state()
            _set_state(saved)
        return self._state

    @contextlib.contextmanager
    def _drawing(self):
        """Random ops inside draw from this generator."""
        state = self._current()
        saved = _aten._a.get_rng_state()
        _set_state(state)
        try:
            yield self
        finally:
            self._state = _aten._a.get_rng_state()
            _set_state(saved)


from . import _indexing, amp, backends, cuda, linalg, nn, optim, utils  # noqa: E402,F401  (they use the names above)
from . import _dynamo  # noqa: E402,F401  (after nn: its module wrapper is an nn.Module)
from .amp import (  # noqa: E402,F401
    autocast,
    autocast_decrement_nesting,
    autocast_increment_nesting,
    clear_autocast_cache,
    get_autocast_dtype,
    is_autocast_cache_enabled,
    is_autocast_enabled,
    set_autocast_cache_enabled,
    set_autocast_dtype,
    set_autocast_enabled,
)
from .nn import functional  # noqa: E402,F401
