"""lightning.pytorch.callbacks: importable so a Lightning file builds; the built-in callbacks
are lthost's own, configured in the run config (`[[callbacks]]`) or on the command line."""

from .core import Callback  # noqa: F401


def _builtin(name):
    class C(Callback):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError(f"{name} inside a plugin: configure it in the run config or on the command line (lthost's {name})")

    C.__name__ = C.__qualname__ = name
    return C


ModelCheckpoint = _builtin("ModelCheckpoint")
EarlyStopping = _builtin("EarlyStopping")
LearningRateMonitor = _builtin("LearningRateMonitor")
TQDMProgressBar = _builtin("TQDMProgressBar")
RichProgressBar = _builtin("RichProgressBar")
StochasticWeightAveraging = _builtin("StochasticWeightAveraging")
GradientAccumulationScheduler = _builtin("GradientAccumulationScheduler")
ModelSummary = _builtin("ModelSummary")
Timer = _builtin("Timer")
