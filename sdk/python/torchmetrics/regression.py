"""torchmetrics' MeanSquaredError (`squared=False`: its root) and MeanAbsoluteError."""

import torch

from .metric import Metric


class MeanSquaredError(Metric):
    is_differentiable = True
    higher_is_better = False

    def __init__(self, squared=True, num_outputs=1, **kwargs):
        super().__init__(**kwargs)
        if num_outputs != 1:
            raise NotImplementedError("MeanSquaredError(num_outputs > 1) is not supported by lthost")
        self.squared = squared
        self.add_state("sum_squared_error", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds, target):
        diff = preds - target
        self.sum_squared_error += torch.sum(diff * diff)
        self.total += target.numel()

    def compute(self):
        mse = self.sum_squared_error / self.total
        return mse if self.squared else torch.sqrt(mse)


class MeanAbsoluteError(Metric):
    is_differentiable = True
    higher_is_better = False

    def __init__(self, num_outputs=1, **kwargs):
        super().__init__(**kwargs)
        self.add_state("sum_abs_error", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds, target):
        self.sum_abs_error += torch.sum(torch.abs(preds - target))
        self.total += target.numel()

    def compute(self):
        return self.sum_abs_error / self.total
