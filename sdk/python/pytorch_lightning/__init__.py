"""`import pytorch_lightning as pl`: Lightning's older package name, the same classes; every
module of `lightning.pytorch` is importable under it (`pytorch_lightning.callbacks`,
`pytorch_lightning.utilities.types`, `pytorch_lightning.demos.boring_classes`, ...)."""

import sys

import lightning.pytorch as _pl
import lightning.pytorch.demos.boring_classes  # noqa: F401  (imported to be aliased below)
from lightning.pytorch import *  # noqa: F401,F403
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer, seed_everything  # noqa: F401

callbacks = _pl.callbacks
loggers = _pl.loggers
cli = _pl.cli
strategies = _pl.strategies
demos = _pl.demos
utilities = _pl.utilities
for _name, _module in list(sys.modules.items()):
    if _name.startswith("lightning.pytorch."):
        sys.modules["pytorch_lightning." + _name[len("lightning.pytorch."):]] = _module
__version__ = _pl.__version__
