"""torch.optim.lr_scheduler: the schedulers the host runs with torch's formulas; Lightning's
`configure_optimizers` returns them (alone or in its lr_scheduler dict)."""

from wit_world.imports import optimization

from .._core import unsupported


class LRScheduler:
    """A scheduler description the host runs (`step()` in manual optimization asks it)."""

    def __init__(self, optimizer, last_epoch=-1):
        from .optimizer import Optimizer

        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if last_epoch != -1:
            raise NotImplementedError("last_epoch: lthost resumes schedulers from checkpoints")
        self.optimizer, self._index = optimizer, None

    def step(self, metrics=None):
        if self._index is None:
            raise RuntimeError("scheduler.step(): the scheduler runs in the host once configure_optimizers returned it")
        optimization.scheduler_step(self._index, None if metrics is None else float(metrics))

    def get_last_lr(self):
        i = self.optimizer._bound("get_last_lr")
        return [optimization.lr(i, g) for g in range(len(self.optimizer.param_groups))]


_LRScheduler = LRScheduler


class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        super().__init__(optimizer, last_epoch)
        self.step_size, self.gamma = step_size, gamma


class MultiStepLR(LRScheduler):
    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        super().__init__(optimizer, last_epoch)
        self.milestones, self.gamma = list(milestones), gamma


class ExponentialLR(LRScheduler):
    def __init__(self, optimizer, gamma, last_epoch=-1):
        super().__init__(optimizer, last_epoch)
        self.gamma = gamma


class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        super().__init__(optimizer, last_epoch)
        self.T_max, self.eta_min = T_max, eta_min


class LinearLR(LRScheduler):
    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        super().__init__(optimizer, last_epoch)
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters


class OneCycleLR(LRScheduler):
    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        super().__init__(optimizer, last_epoch)
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
            total_steps = epochs * steps_per_epoch
        if isinstance(max_lr, (list, tuple)):
            raise NotImplementedError("OneCycleLR(max_lr=[...]) per group is not supported by lthost")
        self.max_lr, self.total_steps, self.pct_start, self.anneal_cos = max_lr, total_steps, pct_start, anneal_strategy == "cos"
        self.cycle_momentum, self.base_momentum, self.max_momentum = cycle_momentum, base_momentum, max_momentum
        self.div_factor, self.final_div_factor, self.three_phase = div_factor, final_div_factor, three_phase


class ReduceLROnPlateau(LRScheduler):
    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        super().__init__(optimizer)
        if isinstance(min_lr, (list, tuple)):
            raise NotImplementedError("ReduceLROnPlateau(min_lr=[...]) per group is not supported by lthost")
        self.mode, self.factor, self.patience, self.threshold = mode, factor, patience, threshold
        self.threshold_mode, self.cooldown, self.min_lr, self.eps = threshold_mode, cooldown, min_lr, eps


def _unsupported(name):
    return unsupported(f"torch.optim.lr_scheduler.{name}", "not supported by lthost yet")


LambdaLR = _unsupported("LambdaLR")
MultiplicativeLR = _unsupported("MultiplicativeLR")
SequentialLR = _unsupported("SequentialLR")
ChainedScheduler = _unsupported("ChainedScheduler")
CosineAnnealingWarmRestarts = _unsupported("CosineAnnealingWarmRestarts")
CyclicLR = _unsupported("CyclicLR")
PolynomialLR = _unsupported("PolynomialLR")
ConstantLR = _unsupported("ConstantLR")
