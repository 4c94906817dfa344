"""`import pytorch_lightning as pl`: Lightning's older package name, the same classes."""

import sys

import lightning.pytorch as _pl
from lightning.pytorch import *  # noqa: F401,F403
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer, seed_everything  # noqa: F401

callbacks = _pl.callbacks
loggers = _pl.loggers
cli = _pl.cli
strategies = _pl.strategies
sys.modules["pytorch_lightning.callbacks"] = _pl.callbacks
sys.modules["pytorch_lightning.loggers"] = _pl.loggers
sys.modules["pytorch_lightning.cli"] = _pl.cli
sys.modules["pytorch_lightning.strategies"] = _pl.strategies
__version__ = _pl.__version__
