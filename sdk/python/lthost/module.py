"""LightningModule and LightningDataModule, as Lightning users write them."""

import inspect

from wit_world.imports import log as _log

from . import nn

_REDUCE = {"mean": _log.ReduceFx.MEAN, "sum": _log.ReduceFx.SUM, "max": _log.ReduceFx.MAX, "min": _log.ReduceFx.MIN}


class _Hparams(dict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e


def init_hparams(cls, given):
    """The keyword arguments `cls.__init__` takes (its defaults, overridden by the run's
    hyper-parameters), and the effective hyper-parameters."""
    sig = inspect.signature(cls.__init__)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    takes_all = any(p.kind == p.VAR_KEYWORD for p in params)
    defaults = {p.name: p.default for p in params if p.default is not p.empty and p.kind != p.VAR_KEYWORD}
    effective = {**defaults, **given}
    kwargs = effective if takes_all else {k: v for k, v in effective.items() if k in defaults or k in [p.name for p in params]}
    return kwargs, effective


class LightningModule:
    """Lightning's LightningModule. Layers assigned to attributes get their paths."""

    def __init__(self, **_):
        pass

    def __setattr__(self, name, value):
        nn.bind_layers(self, name, value)
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("forward")

    def log(self, name, value, prog_bar=False, logger=True, on_step=None, on_epoch=None, reduce_fx="mean", batch_size=None):
        opts = _log.LogOptions(prog_bar, logger, on_step, on_epoch, _REDUCE[reduce_fx], batch_size)
        if isinstance(value, (int, float)):
            _log.log_scalar(name, float(value), opts)
        else:
            _log.log(name, value, opts)

    def log_dict(self, values, **kwargs):
        for name, value in values.items():
            self.log(name, value, **kwargs)

    def save_hyperparameters(self, *args, **kwargs):
        """Lightning's save_hyperparameters: lthost saves the effective hyper-parameters
        (`self.hparams`, set before `__init__` runs) as hparams.yaml already."""

    def configure_optimizers(self):
        raise NotImplementedError("configure_optimizers")

    def training_step(self, batch, batch_idx):
        raise NotImplementedError("training_step")

    def validation_step(self, batch, batch_idx):
        pass

    def test_step(self, batch, batch_idx):
        pass

    def predict_step(self, batch, batch_idx):
        raise NotImplementedError("predict_step")

    def on_save_checkpoint(self):
        """Bytes kept in checkpoints (None: nothing)."""
        return None

    def on_load_checkpoint(self, state):
        pass


class LightningDataModule:
    """Lightning's LightningDataModule: `*_dataloader` return a `Dataset` (or None)."""

    def __init__(self, **_):
        pass

    def setup(self, stage):
        pass

    def train_dataloader(self):
        return None

    def val_dataloader(self):
        return None

    def test_dataloader(self):
        return None

    def predict_dataloader(self):
        return None

    def state_dict(self):
        return None

    def load_state_dict(self, state):
        pass


_registered = {}


def export(module_cls, data_cls=None):
    """Makes `module_cls` (and `data_cls`) this component's LightningModule (DataModule)."""
    _registered["module"] = module_cls
    _registered["data"] = data_cls
