"""lightning.pytorch.loggers: importable so a Lightning file builds; lthost's loggers are
configured in the run config or on the command line."""


def _builtin(name):
    class L:
        def __init__(self, *args, **kwargs):
            raise NotImplementedError(f"{name} inside a plugin: configure lthost's loggers in the run config or on the command line")

    L.__name__ = L.__qualname__ = name
    return L


CSVLogger = _builtin("CSVLogger")
TensorBoardLogger = _builtin("TensorBoardLogger")
WandbLogger = _builtin("WandbLogger")
MLFlowLogger = _builtin("MLFlowLogger")
Logger = _builtin("Logger")
