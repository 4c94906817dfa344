"""torchmetrics in a plugin: the common metrics as tensor code on lthost's torch, with
torchmetrics 1.9's semantics and results (`Metric`, `add_state`, `update`/`compute`/`forward`/`reset`, `MetricCollection`)."""

from . import classification, functional, regression  # noqa: F401
from .aggregation import MaxMetric, MeanMetric, MinMetric, SumMetric  # noqa: F401
from .auroc import AUROC  # noqa: F401
from .classification import Accuracy, F1Score, Precision, Recall  # noqa: F401
from .collections import MetricCollection  # noqa: F401
from .metric import Metric  # noqa: F401
from .regression import MeanAbsoluteError, MeanSquaredError  # noqa: F401

__version__ = "1.9.0"
