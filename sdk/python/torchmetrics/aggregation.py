"""torchmetrics' aggregation metrics: MeanMetric (weighted), SumMetric, MaxMetric, MinMetric.
NaN values warn and are left out (torchmetrics' default `nan_strategy="warn"`)."""

import math
import warnings

import torch

from .metric import Metric


class _Aggregator(Metric):
    def __init__(self, fn, default, nan_strategy="warn", **kwargs):
        super().__init__(**kwargs)
        if nan_strategy not in ("error", "warn", "ignore", "disable") and not isinstance(nan_strategy, float):
            raise ValueError(f"Arg `nan_strategy` should either be a float or one of ('error', 'warn', 'ignore', 'disable') but got {nan_strategy}.")
        self.nan_strategy = nan_strategy
        self.add_state("value", default, dist_reduce_fx=fn)

    def _cast_and_nan_check_input(self, x, weight=None):
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x, dtype=torch.float32)
        if weight is not None and not isinstance(weight, torch.Tensor):
            weight = torch.as_tensor(weight, dtype=torch.float32)
        x = x.float()
        weight = torch.ones_like(x) if weight is None else torch.broadcast_to(weight.float(), x.shape)
        if self.nan_strategy != "disable":
            nans = torch.isnan(x) | torch.isnan(weight)
            if bool(nans.any()):
                if self.nan_strategy == "error":
                    raise RuntimeError("Encountered `nan` values in tensor")
                if self.nan_strategy in ("ignore", "warn"):
                    if self.nan_strategy == "warn":
                        warnings.warn("Encountered `nan` values in tensor. Will be removed.", UserWarning)
                    x, weight = x[~nans], weight[~nans]
                else:
                    x = torch.where(nans, torch.full_like(x, self.nan_strategy), x)
                    weight = torch.where(nans, torch.ones_like(weight), weight)
        return x, weight

    def compute(self):
        return self.value


class SumMetric(_Aggregator):
    def __init__(self, nan_strategy="warn", **kwargs):
        super().__init__("sum", torch.tensor(0.0), nan_strategy, **kwargs)

    def update(self, value):
        value, _ = self._cast_and_nan_check_input(value)
        if value.numel():
            self.value += value.sum()


class MaxMetric(_Aggregator):
    higher_is_better = True

    def __init__(self, nan_strategy="warn", **kwargs):
        super().__init__("max", torch.tensor(-math.inf), nan_strategy, **kwargs)

    def update(self, value):
        value, _ = self._cast_and_nan_check_input(value)
        if value.numel():
            self.value = torch.max(self.value, value.max())


class MinMetric(_Aggregator):
    higher_is_better = False

    def __init__(self, nan_strategy="warn", **kwargs):
        super().__init__("min", torch.tensor(math.inf), nan_strategy, **kwargs)

    def update(self, value):
        value, _ = self._cast_and_nan_check_input(value)
        if value.numel():
            self.value = torch.min(self.value, value.min())


class MeanMetric(_Aggregator):
    def __init__(self, nan_strategy="warn", **kwargs):
        super().__init__("sum", torch.tensor(0.0), nan_strategy, **kwargs)
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value, weight=1.0):
        value, weight = self._cast_and_nan_check_input(value, weight)
        if value.numel() == 0:
            return
        self.value += (value * weight).sum()
        self.weight += weight.sum()

    def compute(self):
        return self.value / self.weight
