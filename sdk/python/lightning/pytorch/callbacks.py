"""lightning.pytorch.callbacks: importable so a Lightning file builds; the built-in callbacks
are lthost's own, configured in the run config (`[[callbacks]]`) or on the command line."""

from torch._core import unsupported

from .core import Callback  # noqa: F401


def _builtin(name):
    return unsupported(name, f"configure it in the run config or on the command line (lthost's {name})", Callback,
                       read_at_build=True)


ModelCheckpoint = _builtin("ModelCheckpoint")
EarlyStopping = _builtin("EarlyStopping")
LearningRateMonitor = _builtin("LearningRateMonitor")
TQDMProgressBar = _builtin("TQDMProgressBar")
RichProgressBar = _builtin("RichProgressBar")
StochasticWeightAveraging = _builtin("StochasticWeightAveraging")
GradientAccumulationScheduler = _builtin("GradientAccumulationScheduler")
ModelSummary = _builtin("ModelSummary")
Timer = _builtin("Timer")
