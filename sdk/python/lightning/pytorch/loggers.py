"""lightning.pytorch.loggers: importable so a Lightning file builds; lthost's loggers are
configured in the run config or on the command line."""

from torch._core import unsupported


def _builtin(name):
    return unsupported(name, "configure lthost's loggers in the run config or on the command line")


CSVLogger = _builtin("CSVLogger")
TensorBoardLogger = _builtin("TensorBoardLogger")
WandbLogger = _builtin("WandbLogger")
MLFlowLogger = _builtin("MLFlowLogger")
Logger = _builtin("Logger")
