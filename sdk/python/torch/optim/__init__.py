"""torch.optim: the optimizers the host runs with torch's update rules, taking parameters
and parameter groups as torch does, and LBFGS, Adamax, Adadelta, NAdam and RAdam, run in
the plugin; `lr_scheduler` has the schedulers."""

from . import lr_scheduler  # noqa: F401
from .adaptive import Adadelta, Adamax, NAdam, RAdam  # noqa: F401
from .lbfgs import LBFGS  # noqa: F401
from .optimizer import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop  # noqa: F401
