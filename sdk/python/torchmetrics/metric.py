"""torchmetrics' Metric: states added with `add_state` (plain tensors the plugin owns, not
module buffers), `update` accumulates, `compute` reads, `forward` gives the batch's own value
and folds the batch into the running state (torchmetrics' `full_state_update=False` path),
`reset` restores the defaults. Logged with `self.log(name, metric)`, Lightning's way: the step
value is the last forward's, the epoch value `compute()` at the epoch's end, then `reset()`."""

import functools

import torch
from torch import nn

_REDUCE = ("sum", "mean", "cat", "min", "max", None)


class Metric(nn.Module):
    is_differentiable = None
    higher_is_better = None
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__()
        unknown = [k for k in kwargs if k not in ("compute_on_cpu", "dist_sync_on_step", "process_group", "dist_sync_fn", "distributed_available_fn", "sync_on_compute", "compute_with_cache", "validate_args")]
        if unknown:
            raise ValueError(f"Unexpected keyword arguments: {', '.join(unknown)}")
        self._defaults, self._reductions = {}, {}
        self._forward_cache = None
        self._update_count = 0
        self.update = self._wrap_update(self.update)  # counts updates, runs without grad
        self.compute = self._wrap_compute(self.compute)  # a one-element result as a scalar

    def add_state(self, name, default, dist_reduce_fx=None, persistent=False):
        if not isinstance(default, torch.Tensor) and default != []:
            raise ValueError("state variable must be a tensor or any empty list (where you can append tensors)")
        if dist_reduce_fx not in _REDUCE and not callable(dist_reduce_fx):
            raise ValueError("`dist_reduce_fx` must be callable or one of ['mean', 'sum', 'cat', 'min', 'max', None]")
        self._defaults[name] = default.detach().clone() if isinstance(default, torch.Tensor) else []
        self._reductions[name] = dist_reduce_fx
        setattr(self, name, self._defaults[name].clone() if isinstance(default, torch.Tensor) else [])

    @property
    def update_called(self):
        return self._update_count > 0

    @property
    def update_count(self):
        return self._update_count

    def update(self, *args, **kwargs):
        raise NotImplementedError

    def compute(self):
        raise NotImplementedError

    def _states(self):
        return {n: getattr(self, n) for n in self._defaults}

    def reset(self):
        self._update_count, self._forward_cache = 0, None
        for n, d in self._defaults.items():
            setattr(self, n, d.clone() if isinstance(d, torch.Tensor) else [])

    def forward(self, *args, **kwargs):
        """The batch's value; the batch is added to the running state."""
        running, count = self._states(), self._update_count
        self.reset()
        self.update(*args, **kwargs)
        with torch.no_grad():
            value = self.compute()
        batch = self._states()
        for n, red in self._reductions.items():
            a, b = running[n], batch[n]
            if isinstance(a, list):
                merged = a + b
            elif red == "sum" or red is None:
                merged = a + b
            elif red == "mean":
                merged = (a * count + b) / (count + 1)
            elif red == "max":
                merged = torch.maximum(a, b)
            elif red == "min":
                merged = torch.minimum(a, b)
            elif red == "cat":
                merged = torch.cat([a, b])
            else:
                merged = red(torch.stack([a, b]))
            setattr(self, n, merged)
        self._update_count = count + 1
        self._forward_cache = value
        return value

    def __getstate__(self):
        """A copy (`MetricCollection.clone`, `copy.deepcopy`) re-wraps its own `update` and
        `compute`, as torchmetrics' does: the wrappers hold the instance they were made for."""
        return {k: v for k, v in self.__dict__.items() if k not in ("update", "compute")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.update = self._wrap_update(self.update)
        self.compute = self._wrap_compute(self.compute)

    def _wrap_update(self, update):
        @functools.wraps(update)  # its signature stays the update's (MetricCollection filters keywords by it)
        def wrapped(*args, **kwargs):
            self._update_count += 1
            with torch.no_grad():
                return update(*args, **kwargs)

        return wrapped

    def _wrap_compute(self, compute):
        def wrapped(*args, **kwargs):
            return _squeeze_scalars(compute(*args, **kwargs))

        return wrapped

    def clone(self):
        import copy

        return copy.deepcopy(self)


def _squeeze_scalars(value):
    """torchmetrics' compute results: every one-element tensor (in lists, tuples, dicts too)
    made 0-dim."""
    if isinstance(value, torch.Tensor):
        return value.squeeze() if value.numel() == 1 else value
    if isinstance(value, (list, tuple)):
        return type(value)(_squeeze_scalars(v) for v in value)
    if isinstance(value, dict):
        return {k: _squeeze_scalars(v) for k, v in value.items()}
    return value
