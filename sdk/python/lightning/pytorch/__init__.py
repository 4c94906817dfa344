"""`lightning.pytorch` (and `pytorch_lightning`) inside an lthost plugin: the classes a
Lightning file defines its model and data with. lthost is the Trainer."""

import sys as _sys

from . import callbacks, cli, core, loggers, profilers, strategies, tuner, utilities  # noqa: F401
from .core import Callback, LightningDataModule, LightningModule, Trainer, seed_everything  # noqa: F401

# Lightning's own module paths that files import from (`from lightning.pytorch.core.module
# import LightningModule`, `from lightning.pytorch.callbacks.early_stopping import
# EarlyStopping`): the same objects.
for _path, _module in {
    "core.module": core, "core.datamodule": core, "core.hooks": core, "trainer": core, "trainer.trainer": core,
    "callbacks.callback": callbacks, "callbacks.early_stopping": callbacks, "callbacks.model_checkpoint": callbacks,
    "callbacks.lr_monitor": callbacks, "callbacks.progress": callbacks, "callbacks.model_summary": callbacks,
    "callbacks.device_stats_monitor": callbacks, "callbacks.batch_size_finder": callbacks,
    "callbacks.lr_finder": callbacks, "callbacks.on_exception_checkpoint": callbacks, "callbacks.timer": callbacks,
    "callbacks.stochastic_weight_avg": callbacks, "callbacks.gradient_accumulation_scheduler": callbacks,
    "loggers.csv_logs": loggers, "loggers.tensorboard": loggers, "loggers.wandb": loggers, "loggers.mlflow": loggers,
    "loggers.logger": loggers, "tuner.tuning": tuner,
}.items():
    _sys.modules[f"{__name__}.{_path}"] = _module

__version__ = "2.6.6"
