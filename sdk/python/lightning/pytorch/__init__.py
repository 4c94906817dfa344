"""`lightning.pytorch` (and `pytorch_lightning`) inside an lthost plugin: the classes a
Lightning file defines its model and data with. lthost is the Trainer."""

from . import callbacks, cli, loggers, strategies  # noqa: F401
from .core import Callback, LightningDataModule, LightningModule, Trainer, seed_everything  # noqa: F401

__version__ = "2.6.6"
