"""lightning.pytorch.loggers: importable so a Lightning file builds; lthost's loggers are
configured in the run config or on the command line."""

from torch._core import unsupported


def _builtin(name, kind=None):
    if kind is None:
        return unsupported(name, "configure lthost's loggers in the run config or on the command line", read_at_build=True)
    return unsupported(name, f"use trainer.loggers = [\"{kind}\"] (or --logger {kind}) and give its save_dir, name, "
                             f"version and prefix in the run config's [loggers.{kind}] table", read_at_build=True)


CSVLogger = _builtin("CSVLogger", "csv")
TensorBoardLogger = _builtin("TensorBoardLogger", "tensorboard")
WandbLogger = _builtin("WandbLogger")
MLFlowLogger = _builtin("MLFlowLogger")
Logger = _builtin("Logger")
