"""torchmetrics' MetricCollection (1.9): metrics under names (a list: each class's name; a dict:
its keys, in sorted order), called, updated, computed and reset together, their results keyed
`prefix + name + postfix` (a metric returning a dict flattened into it), `clone(prefix=...)` a
deep copy under new affixes. Logged with `self.log_dict(collection)`, Lightning's way: each
metric object under its key. Compute groups (torchmetrics' shared states between metrics of
one kind) are a speed-up only: each metric keeps its own state here, with the same results."""

import inspect
from copy import deepcopy

from torch import nn

from .metric import Metric


def _check_arg(arg, name):
    if arg is None or isinstance(arg, str):
        return arg
    raise ValueError(f"Expected input `{name}` to be a string, but got {type(arg)}")


def _filter_kwargs(metric, kwargs):
    """The keyword arguments `metric.update` takes (all of them when it takes `**kwargs`)."""
    if not kwargs:
        return kwargs
    params = inspect.signature(metric.update).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params if p.kind != p.VAR_POSITIONAL}
    return {k: v for k, v in kwargs.items() if k in names}


class MetricCollection(nn.ModuleDict):
    def __init__(self, metrics, *additional_metrics, prefix=None, postfix=None, compute_groups=True):
        super().__init__()
        self.prefix = _check_arg(prefix, "prefix")
        self.postfix = _check_arg(postfix, "postfix")
        self._enable_compute_groups = compute_groups
        self.add_metrics(metrics, *additional_metrics)

    def add_metrics(self, metrics, *additional_metrics):
        if isinstance(metrics, Metric):
            metrics = [metrics]
        if isinstance(metrics, (list, tuple)):
            metrics = list(metrics) + [m for m in additional_metrics if isinstance(m, Metric)]
        elif additional_metrics:
            raise ValueError(f"You have passes extra arguments {additional_metrics} which are not compatible with first "
                             f"passed dictionary {metrics} so they will be ignored.")
        if isinstance(metrics, dict):
            for name in sorted(metrics):
                metric = metrics[name]
                if isinstance(metric, Metric):
                    self[name] = metric
                elif isinstance(metric, MetricCollection):
                    self._nested(metric, lambda k: f"{name}_{k}")
                else:
                    raise ValueError(f"Value {metric} belonging to key {name} is not an instance of `torchmetrics.Metric` "
                                     f"or `torchmetrics.MetricCollection`")
        elif isinstance(metrics, list):
            for metric in metrics:
                if isinstance(metric, Metric):
                    name = type(metric).__name__
                    if name in self:
                        raise ValueError(f"Encountered two metrics both named {name}")
                    self[name] = metric
                elif isinstance(metric, MetricCollection):
                    self._nested(metric, lambda k: k)
                else:
                    raise ValueError(f"Input {metric} to `MetricCollection` is not a instance of `torchmetrics.Metric` or "
                                     f"`torchmetrics.MetricCollection`")
        elif isinstance(metrics, MetricCollection):
            for name, metric in metrics.items(keep_base=False):
                if name in self:
                    raise ValueError(f"Metric with name '{name}' already exists in the collection.")
                self[name] = metric
        else:
            raise ValueError("Unknown input to MetricCollection. Expected, `Metric`, `MetricCollection` or `dict`/`sequence` "
                             "of the previous, but got {metrics}")

    def _nested(self, collection, key):
        for k, v in collection.items(keep_base=False):
            v.prefix, v.postfix, v._from_collection = collection.prefix, collection.postfix, True
            self[key(k)] = v

    def forward(self, *args, **kwargs):
        return self._results({k: m(*args, **_filter_kwargs(m, kwargs)) for k, m in self.items(keep_base=True)})

    def update(self, *args, **kwargs):
        for m in self.values():
            m.update(*args, **_filter_kwargs(m, kwargs))

    def compute(self):
        return self._results({k: m.compute() for k, m in self.items(keep_base=True)})

    def _results(self, result):
        """torchmetrics' `_compute_and_reduce`: dict results flattened (their keys made unique by
        the metric's name when two share one), every key under the collection's affixes."""
        seen, duplicates = set(), False
        for res in result.values():
            for key in res if isinstance(res, dict) else ():
                duplicates |= key in seen
                seen.add(key)
        flat = {}
        for k, m in self.items(keep_base=True):
            res = result[k]
            if not isinstance(res, dict):
                flat[k] = res
                continue
            for key, v in res.items():
                if duplicates:
                    key = f"{k.replace(getattr(m, 'prefix', None) or '', '').replace(getattr(m, 'postfix', None) or '', '')}_{key}"
                if getattr(m, "_from_collection", None) and m.prefix is not None:
                    key = f"{m.prefix}{key}"
                if getattr(m, "_from_collection", None) and m.postfix is not None:
                    key = f"{key}{m.postfix}"
                flat[key] = v
        return {self._set_name(k): v for k, v in flat.items()}

    def reset(self):
        for m in self.values():
            m.reset()

    def clone(self, prefix=None, postfix=None):
        mc = deepcopy(self)
        if prefix:
            mc.prefix = _check_arg(prefix, "prefix")
        if postfix:
            mc.postfix = _check_arg(postfix, "postfix")
        return mc

    @property
    def compute_groups(self):
        return {}

    def _set_name(self, base):
        name = base if self.prefix is None else self.prefix + base
        return name if self.postfix is None else name + self.postfix

    def keys(self, keep_base=False):
        return self._modules.keys() if keep_base else [self._set_name(k) for k in self._modules]

    def items(self, keep_base=False, copy_state=True):
        return self._modules.items() if keep_base else [(self._set_name(k), v) for k, v in self._modules.items()]

    def values(self, copy_state=True):
        return self._modules.values()

    def __iter__(self):
        return iter(self.keys())

    def __getitem__(self, key, copy_state=True):
        if self.prefix and key.startswith(self.prefix):
            key = key[len(self.prefix):]
        if self.postfix and key.endswith(self.postfix):
            key = key[: -len(self.postfix)]
        return self._modules[key]

    def __repr__(self):
        body = ",\n".join(f"  ({k}): {v!r}" for k, v in self._modules.items())
        affixes = "".join(f",\n  {n}={v}" for n, v in (("prefix", self.prefix), ("postfix", self.postfix)) if v)
        return f"{type(self).__name__}(\n{body}{affixes}\n)"
