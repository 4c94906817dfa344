"""`import lightning as L` inside an lthost plugin: `L.LightningModule`, `L.LightningDataModule`,
`L.Callback`, `L.seed_everything`; `lightning.pytorch` is the same package."""

from . import pytorch  # noqa: F401
from .pytorch import Callback, LightningDataModule, LightningModule, Trainer, seed_everything  # noqa: F401

__version__ = "2.6.6"
