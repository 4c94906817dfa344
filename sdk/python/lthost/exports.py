"""The component's exports (`lt:plugin/lightning-module`, `lt:plugin/data-module`): import
`LightningModule` and `DataModule` from here into the app module; they call the classes
given to `lthost.export`."""

import json

from componentize_py_types import Err
from wit_world import exports as _exports
from wit_world.exports import data_module as _dm
from wit_world.imports.types import Stage

from . import optim
from .module import _Hparams, _registered, init_hparams

_live = {}
_STAGES = {Stage.FIT: "fit", Stage.VALIDATE: "validate", Stage.TEST: "test", Stage.PREDICT: "predict", Stage.SANITY_CHECK: "fit"}


def _instantiate(cls, hparams):
    """`cls` made with the run's hyper-parameters (JSON) over its `__init__` defaults;
    `self.hparams` is there in `__init__` already, as Lightning's after save_hyperparameters."""
    kwargs, effective = init_hparams(cls, json.loads(hparams))
    obj = cls.__new__(cls)
    object.__setattr__(obj, "hparams", _Hparams(effective))
    obj.__init__(**kwargs)
    return obj, effective


def _module():
    m = _live.get("module")
    if m is None:
        raise RuntimeError("lthost called a module hook before configure")
    return m


class LightningModule(_exports.LightningModule):
    def configure(self, hparams):
        cls = _registered.get("module")
        if cls is None:
            raise Err("no LightningModule was exported (call lthost.export)")
        try:
            m, effective = _instantiate(cls, hparams)
            text = json.dumps(effective)
        except (TypeError, ValueError, KeyError) as e:
            raise Err(f"{cls.__name__}: {e}")
        _live["module"] = m
        return text

    def configure_optimizers(self):
        return optim.optimization(_module().configure_optimizers())

    def save_state(self):
        return _module().on_save_checkpoint()

    def load_state(self, state):
        _module().on_load_checkpoint(state)

    def implemented_hooks(self):
        return []

    def on_hook(self, hook, stage, batch_idx):
        return 0

    def training_step(self, batch, batch_idx):
        return _module().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        _module().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx):
        _module().test_step(batch, batch_idx)

    def predict_step(self, batch, batch_idx):
        return _module().predict_step(batch, batch_idx)


_SPLITS = {_dm.Split.TRAIN: "train_dataloader", _dm.Split.VAL: "val_dataloader", _dm.Split.TEST: "test_dataloader", _dm.Split.PREDICT: "predict_dataloader"}


def _data():
    d = _live.get("data")
    if d is None:
        raise RuntimeError("lthost asked for data before setup")
    return d


class DataModule(_exports.DataModule):
    def setup(self, stage, hparams):
        cls = _registered.get("data")
        if cls is None:
            raise Err("no LightningDataModule was exported (lthost.export(Module, DataModule))")
        try:
            d, _ = _instantiate(cls, hparams)
            d.setup(_STAGES[stage])
        except (TypeError, ValueError, KeyError, OSError) as e:
            raise Err(f"{cls.__name__}.setup: {e}")
        _live["data"] = d

    def dataloader(self, split):
        ds = getattr(_data(), _SPLITS[split])()
        return None if ds is None else ds.record()

    def streaming(self, split):
        return None

    def start_pass(self, split, worker):
        raise Err("this DataModule has no stream")

    def next_batch(self, split):
        return None

    def save_state(self):
        return _data().state_dict()

    def load_state(self, state):
        _data().load_state_dict(state)
