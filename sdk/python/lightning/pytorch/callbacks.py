"""lightning.pytorch.callbacks: `Callback` to subclass (a file's own callbacks run in the
plugin), and Lightning's built-in callbacks, importable so a Lightning file builds: those are
lthost's own, read from the file's Trainer at build or configured in the run config."""

from torch._core import unsupported

from .core import Callback  # noqa: F401


def _builtin(name):
    cls = unsupported(name, f"configure it in the run config or on the command line (lthost's {name})", Callback,
                      read_at_build=True)
    cls._lt_builtin = True  # read at build, run by lthost: never one of the file's own callbacks
    return cls


ModelCheckpoint = _builtin("ModelCheckpoint")
EarlyStopping = _builtin("EarlyStopping")
LearningRateMonitor = _builtin("LearningRateMonitor")
TQDMProgressBar = _builtin("TQDMProgressBar")
RichProgressBar = _builtin("RichProgressBar")
StochasticWeightAveraging = _builtin("StochasticWeightAveraging")
GradientAccumulationScheduler = _builtin("GradientAccumulationScheduler")
ModelSummary = _builtin("ModelSummary")
RichModelSummary = _builtin("RichModelSummary")
Timer = _builtin("Timer")
DeviceStatsMonitor = _builtin("DeviceStatsMonitor")
BatchSizeFinder = _builtin("BatchSizeFinder")
LearningRateFinder = _builtin("LearningRateFinder")
OnExceptionCheckpoint = _builtin("OnExceptionCheckpoint")

# Lightning's callbacks lthost has no built-in for: naming one is an error that says so.
_NOT_HERE = ("ThroughputMonitor", "BasePredictionWriter", "LambdaCallback", "BaseFinetuning", "BackboneFinetuning",
             "ModelPruning", "SpikeDetection", "WeightAveraging", "EMAWeightAveraging", "Checkpoint", "ProgressBar")


def __getattr__(name):
    if name in _NOT_HERE:
        raise NotImplementedError(f"lightning.pytorch.callbacks.{name}: not one of lthost's built-in callbacks "
                                  f"(lthost `--help` lists them; a plugin callback can be written as a WASM component)")
    raise AttributeError(f"module 'lightning.pytorch.callbacks' has no attribute '{name}'")
