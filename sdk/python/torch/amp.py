"""`torch.amp` / `torch.autocast` inside an lthost plugin: the same switches torch's
`autocast.__enter__`/`__exit__` flip, on the host's libtorch (so ops inside cast as in
torch). The trainer's own autocast (a `bf16-mixed` / `16-mixed` run's steps) is on when a
step starts; each hook's end puts back the trainer's."""

import functools
import warnings

from componentize_py_types import Err
from wit_world.imports import aten as _a

from . import _core

__all__ = ["autocast", "is_autocast_available", "GradScaler"]


def is_autocast_available(device_type):
    return device_type in ("cpu", "cuda")


def _checked(call, *args):
    try:
        return call(*args)
    except Err as e:
        raise RuntimeError(e.value) from None


def is_autocast_enabled(device_type=None):
    # torch.is_autocast_enabled() without a device type asks about CUDA (torch's old form).
    return _checked(_a.autocast_enabled, "cuda" if device_type is None else device_type)


def set_autocast_enabled(device_type, enabled):
    _checked(_a.set_autocast_enabled, device_type, bool(enabled))


def get_autocast_dtype(device_type):
    return _core._FROM_WIT[_checked(_a.autocast_dtype, device_type)]


def set_autocast_dtype(device_type, dtype):
    _checked(_a.set_autocast_dtype, device_type, dtype._wit)


def is_autocast_cache_enabled():
    return _a.autocast_cache_enabled()


def set_autocast_cache_enabled(enabled):
    _a.set_autocast_cache_enabled(bool(enabled))


def clear_autocast_cache():
    _a.clear_autocast_cache()


def autocast_increment_nesting():
    return _checked(_a.autocast_nesting, 1)


def autocast_decrement_nesting():
    return _checked(_a.autocast_nesting, -1)


class autocast:
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): a context
    manager and decorator, checked as torch checks it."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        if not is_autocast_available(device_type):
            raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
        self.device = device_type
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else dtype
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None else cache_enabled
        if enabled and self.device == "cpu" and self.fast_dtype not in (_core.bfloat16, _core.float16):
            warnings.warn(
                "In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                "CPU Autocast only supports dtypes of torch.bfloat16, torch.float16 currently.",
                stacklevel=2,
            )
            enabled = False
        if enabled and self.device == "cuda" and self.fast_dtype not in (_core.bfloat16, _core.float16):
            raise RuntimeError(f"autocast computes in float16 or bfloat16, not {self.fast_dtype}")
        self._enabled = enabled

    def __enter__(self):
        self.prev_cache_enabled = is_autocast_cache_enabled()
        self.prev = is_autocast_enabled(self.device)
        self.prev_fastdtype = get_autocast_dtype(self.device)
        set_autocast_enabled(self.device, self._enabled)
        if self.fast_dtype in (_core.bfloat16, _core.float16):
            set_autocast_dtype(self.device, self.fast_dtype)
        autocast_increment_nesting()
        set_autocast_cache_enabled(self._cache_enabled)
        return self

    def __exit__(self, *exc):
        # Drop the cache when leaving the outermost autocast scope.
        if autocast_decrement_nesting() == 0:
            clear_autocast_cache()
        set_autocast_enabled(self.device, self.prev)
        set_autocast_dtype(self.device, self.prev_fastdtype)
        set_autocast_cache_enabled(self.prev_cache_enabled)
        return False

    def __call__(self, fn):
        args = (self.device, self.fast_dtype, self._enabled, self._cache_enabled)

        @functools.wraps(fn)
        def wrapped(*a, **kw):
            with autocast(*args):
                return fn(*a, **kw)

        return wrapped


class GradScaler:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            "torch.amp.GradScaler: in lthost the trainer scales the loss (precision=\"16-mixed\"); "
            "a plugin-side scaler is not supported"
        )
