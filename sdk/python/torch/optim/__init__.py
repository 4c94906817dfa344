"""torch.optim: the optimizers the host runs with torch's update rules, taking parameters
and parameter groups as torch does; `lr_scheduler` has the schedulers the host runs."""

from . import lr_scheduler  # noqa: F401
from .optimizer import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop  # noqa: F401
