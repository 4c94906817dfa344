"""LightningModule, LightningDataModule and Callback as Lightning users write them; the
Trainer is lthost itself (its options come from the run's config and command line)."""

import functools
import numbers
import random

import torch
from torch import nn
from wit_world.imports import log as _log
from wit_world.imports import optimization as _opt
from wit_world.imports import trainer as _trainer
from wit_world.imports.types import Stage

from ._callback import Callback  # noqa: F401  (Lightning's `lightning.pytorch.Callback`)
from ._hparams import HyperparametersMixin

_REDUCE = {"mean": _log.ReduceFx.MEAN, "sum": _log.ReduceFx.SUM, "max": _log.ReduceFx.MAX, "min": _log.ReduceFx.MIN}
_STAGE_NAMES = {Stage.FIT: "fit", Stage.VALIDATE: "validate", Stage.TEST: "test", Stage.PREDICT: "predict", Stage.SANITY_CHECK: "fit"}


# The component's LightningModule and LightningDataModule once built (lightning/_component.py).
_LIVE = {}


class _TrainerState:
    """`self.trainer` as a plugin reads it: the run's state, read-only."""

    @property
    def lightning_module(self):
        return _LIVE.get("module")

    @property
    def datamodule(self):
        """The file's LightningDataModule; None for a file without one, as in Lightning."""
        d = _LIVE.get("data")
        return d if isinstance(d, LightningDataModule) else None

    @property
    def current_epoch(self):
        return _trainer.current_epoch()

    @property
    def global_step(self):
        return _trainer.global_step()

    @property
    def max_epochs(self):
        m = _trainer.max_epochs()
        return -1 if m is None else m

    @property
    def precision(self):
        return _trainer.precision()

    @property
    def training(self):
        return _trainer.training()

    @property
    def sanity_checking(self):
        return _trainer.current_stage() == Stage.SANITY_CHECK

    @property
    def testing(self):
        return _trainer.current_stage() == Stage.TEST

    @property
    def predicting(self):
        return _trainer.current_stage() == Stage.PREDICT

    @property
    def validating(self):
        return _trainer.current_stage() == Stage.VALIDATE

    @property
    def is_global_zero(self):
        return _trainer.ranks().global_rank == 0

    @property
    def is_last_batch(self):
        return _trainer.is_last_batch()

    @property
    def max_steps(self):
        m = _trainer.fit_numbers().max_steps
        return -1 if m is None else m

    @property
    def num_training_batches(self):
        n = _trainer.fit_numbers().num_training_batches
        return float("inf") if n is None else n  # a DataLoader of unknown length

    @property
    def num_val_batches(self):
        return [float("inf") if n is None else n for n in _trainer.fit_numbers().num_val_batches]

    @property
    def accumulate_grad_batches(self):
        return _trainer.fit_numbers().accumulate_grad_batches

    @property
    def log_every_n_steps(self):
        return _trainer.fit_numbers().log_every_n_steps

    @property
    def check_val_every_n_epoch(self):
        return _trainer.fit_numbers().check_val_every_n_epoch

    @property
    def estimated_stepping_batches(self):
        """Lightning's estimate of the optimizer steps a fit makes (OneCycleLR's total_steps):
        the batches per epoch over accumulation, rounded up, times max_epochs, capped by
        max_steps."""
        n = _trainer.fit_numbers()
        if self.max_epochs == -1:
            return float("inf") if n.max_steps is None else n.max_steps
        if n.num_training_batches is None:  # a DataLoader of unknown length: Lightning's max_steps
            return self.max_steps
        steps = -(-n.num_training_batches // max(n.accumulate_grad_batches, 1)) * max(self.max_epochs, 1)
        return steps if n.max_steps is None else min(steps, n.max_steps)

    @property
    def world_size(self):
        return _trainer.ranks().world_size

    @property
    def global_rank(self):
        return _trainer.ranks().global_rank

    @property
    def local_rank(self):
        return _trainer.ranks().local_rank

    @property
    def node_rank(self):
        return _trainer.ranks().node_rank

    @property
    def num_devices(self):
        return _trainer.ranks().num_devices

    @property
    def num_nodes(self):
        return _trainer.ranks().num_nodes

    @property
    def callback_metrics(self):
        """Lightning's `trainer.callback_metrics`: what was logged, as tensors."""
        return _metrics("callback")

    @property
    def logged_metrics(self):
        return _metrics("logged")

    @property
    def progress_bar_metrics(self):
        return _metrics("progress_bar")

    @property
    def should_stop(self):
        return _trainer.should_stop()

    @should_stop.setter
    def should_stop(self, stop):
        """`trainer.should_stop = True` asks the fit to stop where Lightning's loops look at
        it (once min_epochs/min_steps are met)."""
        _trainer.set_should_stop(bool(stop))

    @property
    def callbacks(self):
        """The file's own callbacks of this run (lthost's built-ins are not Python objects)."""
        return list(_LIVE.get("callbacks", ()))

    def __getattr__(self, name):
        raise AttributeError(f"trainer.{name} is not available to lthost plugins")


def _metrics(which):
    """One of the trainer's metric dictionaries, each value a float32 scalar tensor."""
    m = _trainer.metrics()
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in getattr(m, which)}


_TRAINER = _TrainerState()


# Where the module is (set by the component adapter): the split ("train", "val", "test",
# "predict") and whether it is a step or batch hook (Lightning's on_step/on_epoch defaults).
_WHERE = {"split": None, "in_step": False}
# Metric objects logged this epoch, per split: name -> (metric, epoch name, prog_bar, logger, on_epoch).
_LOGGED_METRICS = {}
# The names the running hook logged (an epoch-end hook's own value of a name wins over a Metric
# object's epoch value, as Lightning's later-registered key does).
_HOOK_LOGGED = set()


def _check_loggable(name, value):
    """Lightning's refusal of what `self.log` cannot take (LightningModule.log): a dict holding
    a dict, or anything but a number, a tensor or a Metric; its words."""
    if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
        raise ValueError(f"`self.log({name}, {value})` was called, but nested dictionaries cannot be logged")
    if not isinstance(value, (numbers.Number, torch.Tensor)) and not _is_metric(value):
        raise ValueError(f"`self.log({name}, {value})` was called, but `{type(value).__name__}` values cannot be logged")


def _metric_attribute(module, name, metric):
    """Lightning's lookup of a logged Metric among the module's attributes (its state is
    found by that name): refused, in its words, when the module does not hold it."""
    attributes = module.__dict__.get("_lt_metric_attributes")
    if attributes is None or id(metric) not in attributes:
        # Found once, as Lightning's `_metric_attributes`, and again on a miss: Lightning
        # forgets them at each run's teardown (a module may make its metrics in `setup`).
        attributes = {id(m): n for n, m in module.named_modules() if _is_metric(m)}
        module.__dict__["_lt_metric_attributes"] = attributes
    if not attributes:
        raise RuntimeError("Could not find the `LightningModule` attribute for the `torchmetrics.Metric` logged. You can fix this by setting an attribute for the metric in your `LightningModule`.")
    if id(metric) not in attributes:
        raise RuntimeError(f"Could not find the `LightningModule` attribute for the `torchmetrics.Metric` logged. You can fix this by calling `self.log({name}, ..., metric_attribute=name)` where `name` is one of {list(attributes.values())}")


def _is_metric(value):
    return isinstance(value, nn.Module) and hasattr(value, "_forward_cache") and hasattr(value, "compute")


def flush_metrics(module, split):
    """Lightning's end of an epoch for the Metric objects logged in it: each logged with
    on_epoch gets `compute()` as its epoch value, and every one is `reset()`."""
    logged = _LOGGED_METRICS.pop(split, {})
    for (name, dl), (metric, epoch_name, prog_bar, logger, on_epoch) in logged.items():
        # Logged under one of several DataLoaders: its name carries it (Lightning's suffix).
        suffix = "" if dl is None else f"/dataloader_idx_{dl}"
        if on_epoch and epoch_name + suffix not in _HOOK_LOGGED:
            value = metric.compute()
            module.log(epoch_name + suffix, value, prog_bar=prog_bar, logger=logger, on_step=False, on_epoch=True, add_dataloader_idx=False)
            if epoch_name != name:
                # Lightning's callback_metrics also hold a forked metric under its bare name
                # (the epoch's value now), for monitors and checkpoint names; not logged.
                module.log(name + suffix, value, prog_bar=False, logger=False, on_step=False, on_epoch=True, add_dataloader_idx=False)
        metric.reset()


class MisconfigurationException(Exception):
    """Lightning's exception for a setting it cannot use."""


def _reduce_name(fx):
    """Lightning's `_parse_reduce_fx`: a name in any case ("avg" is the mean), or torch's
    mean, sum, max or min; anything else is refused with Lightning's message."""
    name = fx.lower() if isinstance(fx, str) else getattr(fx, "__name__", "")
    name = "mean" if name == "avg" else name
    if name in _REDUCE:
        return name
    raise MisconfigurationException(
        "Only `self.log(..., reduce_fx={min,max,mean,sum})` are supported."
        " If you need a custom reduction, please log a `torchmetrics.Metric` instance instead."
        f" Found: {fx}"
    )


def _to_device(batch, device):
    """Lightning's move_data_to_device: every tensor of `batch` (nested in lists, tuples and
    dicts) moved to `device`; anything else as it is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return type(batch)((k, _to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class _DataHooks:
    """The batch-transfer hooks LightningModule and LightningDataModule share (Lightning's
    DataHooks): each returns the batch, the default transfer moves its tensors."""

    def on_before_batch_transfer(self, batch, dataloader_idx):
        return batch

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return _to_device(batch, device)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        return batch


class LightningModule(_DataHooks, HyperparametersMixin, nn.Module):
    """Lightning's LightningModule. `self.hparams` holds what `save_hyperparameters` saved."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.__dict__.setdefault("automatic_optimization", True)
        self.__dict__.setdefault("_lt_optimizers", [])
        self.__dict__.setdefault("_lt_schedulers", [])

    # ---- the run's state ----
    @property
    def trainer(self):
        return _TRAINER

    @property
    def current_epoch(self):
        return _TRAINER.current_epoch

    @property
    def global_step(self):
        return _TRAINER.global_step

    @property
    def device(self):
        return torch.device(_trainer.device())

    @property
    def dtype(self):
        # A true precision's dtype once the run converted the module (Lightning's
        # `_DeviceDtypeModuleMixin` after `convert_module`), else float32.
        if not torch._core.RUNNING[0]:
            return torch.float32
        return {"64-true": torch.float64, "bf16-true": torch.bfloat16, "16-true": torch.float16}.get(
            _trainer.precision(), torch.float32)

    @property
    def global_rank(self):
        return _trainer.ranks().global_rank

    @property
    def local_rank(self):
        return _trainer.ranks().local_rank

    def print(self, *args, **kwargs):
        print(*args, **kwargs)

    def prepare_data(self):
        """Lightning's: called once before `setup` (a download in Python; no network in a plugin)."""

    def configure_callbacks(self):
        """Callbacks the module adds to the run (they replace the Trainer's of the same type)."""
        return []

    def freeze(self):
        """Lightning's: no parameter requires a gradient, and the module is in eval mode."""
        for param in self.parameters():
            param.requires_grad = False
        self.eval()

    def unfreeze(self):
        """Lightning's: every parameter requires a gradient, and the module is in train mode."""
        for param in self.parameters():
            param.requires_grad = True
        self.train()

    # ---- logging ----
    def log(self, name, value, prog_bar=False, logger=None, on_step=None, on_epoch=None, reduce_fx="mean", enable_graph=False, sync_dist=False, sync_dist_group=None, add_dataloader_idx=True, batch_size=None, metric_attribute=None, rank_zero_only=False):
        _check_loggable(name, value)
        if _trainer.current_stage() == Stage.PREDICT:
            # Lightning refuses it before any other rule (no result collection in predict).
            raise RuntimeError("You are trying to `self.log()` but the loop's result collection is not registered yet. This is most likely because you are trying to log in a `predict` hook, but it doesn't support logging")
        reduce = _REDUCE[_reduce_name(reduce_fx)]
        _HOOK_LOGGED.add(name)
        if _is_metric(value):
            if metric_attribute is None:
                _metric_attribute(self, name, value)
            return self._log_metric(name, value, prog_bar, logger, on_step, on_epoch, add_dataloader_idx)
        opts = _log.LogOptions(bool(prog_bar), True if logger is None else bool(logger), on_step, on_epoch, reduce, batch_size, bool(add_dataloader_idx))
        # sync_dist: reduced across the ranks of a distributed run by the host.
        if isinstance(value, torch.Tensor):
            # The host keeps it detached, as Lightning does.
            (_log.log_synced if sync_dist else _log.log)(name, value._h, opts)
        else:
            (_log.log_scalar_synced if sync_dist else _log.log_scalar)(name, float(value), opts)

    def _log_metric(self, name, metric, prog_bar, logger, on_step, on_epoch, add_dataloader_idx=True):
        """A torchmetrics Metric, as Lightning logs one: on_step, the value of this step's
        `metric(...)` call (as `name_step` when also on_epoch); on_epoch, `compute()` when the
        epoch ends (as `name_epoch` when also on_step); reset then."""
        split = _WHERE["split"]
        if split is None or not _WHERE["in_step"]:
            return self.log(name, metric.compute(), prog_bar, logger, on_step, on_epoch, add_dataloader_idx=add_dataloader_idx)
        stepwise = split == "train"
        on_step = stepwise if on_step is None else bool(on_step)
        on_epoch = (not stepwise) if on_epoch is None else bool(on_epoch)
        if on_step:
            if metric._forward_cache is None:
                raise RuntimeError(f"self.log({name!r}, {type(metric).__name__}, on_step=True): call the metric (`metric(preds, target)`) in this step first; `update` alone gives no step value")
            self.log(f"{name}_step" if on_epoch else name, metric._forward_cache, prog_bar, logger, on_step=True, on_epoch=False, add_dataloader_idx=add_dataloader_idx)
            if on_epoch and stepwise:
                # The bare name in training's callback_metrics holds the step's value (Lightning).
                self.log(name, metric._forward_cache, False, False, on_step=True, on_epoch=False)
        epoch_name = f"{name}_epoch" if on_step else name
        # One entry per DataLoader the metric is logged under (Lightning's key holds its index).
        dl = _trainer.dataloader_idx() if add_dataloader_idx else None
        _LOGGED_METRICS.setdefault(split, {})[(name, dl)] = (metric, epoch_name, prog_bar, logger, on_epoch)

    def log_dict(self, dictionary, prog_bar=False, logger=None, on_step=None, on_epoch=None, reduce_fx="mean", enable_graph=False, sync_dist=False, sync_dist_group=None, add_dataloader_idx=True, batch_size=None, rank_zero_only=False):
        for k, v in dictionary.items():
            self.log(k, v, prog_bar, logger, on_step, on_epoch, reduce_fx, sync_dist=sync_dist, add_dataloader_idx=add_dataloader_idx, batch_size=batch_size)

    # ---- optimization ----
    def configure_optimizers(self):
        raise NotImplementedError("configure_optimizers")

    def optimizers(self, use_pl_optimizer=True):
        opts = self._lt_optimizers
        return opts[0] if len(opts) == 1 else list(opts)

    def lr_schedulers(self):
        s = self._lt_schedulers
        if not s:
            return None
        return s[0] if len(s) == 1 else list(s)

    def manual_backward(self, loss, *args, **kwargs):
        _opt.manual_backward(loss._h)

    def toggle_optimizer(self, optimizer):
        _opt.toggle(optimizer._bound("toggle_optimizer"))

    def untoggle_optimizer(self, optimizer):
        _opt.untoggle(optimizer._bound("untoggle_optimizer"))

    # ---- steps ----
    def forward(self, *args, **kwargs):
        raise NotImplementedError("forward")

    def training_step(self, *args, **kwargs):
        raise NotImplementedError("`training_step` must be implemented to be used with the Lightning Trainer")

    def validation_step(self, *args, **kwargs):
        return None

    def test_step(self, *args, **kwargs):
        return None

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self(batch)

    def on_save_checkpoint(self, checkpoint):
        pass

    def on_load_checkpoint(self, checkpoint):
        pass


class LightningDataModule(_DataHooks, HyperparametersMixin):
    """Lightning's LightningDataModule: `*_dataloader` return torch DataLoaders."""

    def __init__(self, *args, **kwargs):
        pass

    @property
    def trainer(self):
        """The run's state, read-only (a DataLoader may depend on `trainer.current_epoch`
        with `reload_dataloaders_every_n_epochs`)."""
        return _TRAINER

    def prepare_data(self):
        pass

    def setup(self, stage):
        pass

    def teardown(self, stage):
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
        return {}

    def load_state_dict(self, state_dict):
        pass




def seed_everything(seed=None, workers=False, verbose=True):
    """Lightning's seed_everything from a hook or the module's `__init__` on: torch's generator
    (`torch.manual_seed`) and Python's `random`. At build time (the file's top level) the
    run's seed is lthost's `--seed` / the run config's `seed_everything`, which it leaves."""
    import sys

    from .. import _block_run

    if _block_run.ACTIVE[0] is not None:
        seed = _block_run.ACTIVE[0].seed  # the block's seed, unless the run's --seed says otherwise
    if seed is None:
        seed = 0  # a plugin has no PL_GLOBAL_SEED: Lightning's default then
        if verbose:
            print(f"No seed found, seed set to {seed}", file=sys.stderr)
    seed = int(seed)
    if not (0 <= seed <= 2**32 - 1):
        raise ValueError(f"{seed} is not in bounds, numpy accepts from 0 to {2**32 - 1}")
    torch.manual_seed(seed)
    if torch._core.RUNNING[0]:
        random.seed(seed)
    # Lightning's PL_SEED_WORKERS: its worker_init_fn for DataLoaders without one.
    torch.utils.data.SEED_WORKERS[0] = functools.partial(pl_worker_init_function, rank=0) if workers else None
    return seed


def pl_worker_init_function(worker_id, rank=None):
    """Lightning's worker_init_fn after `seed_everything(workers=True)`: the worker's base seed
    (torch.initial_seed() - id) mixed with its id and rank into four 64-bit seeds (a MurmurHash3
    finalizer, then an LCG), the first reseeding torch's generator, the next two Python's
    `random` (numpy is not in a plugin)."""
    base = torch.initial_seed() - worker_id
    seeds = _seed_sequence(base, worker_id, 0 if rank is None else rank, 4)
    torch.manual_seed(seeds[0])
    random.seed((seeds[1] << 32) | seeds[2])


def _seed_sequence(base, worker_id, rank, count):
    mask = (1 << 64) - 1
    x = (base << 32) | (worker_id << 16) | rank
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & mask
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & mask
    x ^= x >> 33
    out = []
    for _ in range(count):
        x = (x * 6364136223846793005 + 1) & mask
        out.append(x)
    return out


class Trainer:
    """lthost is the Trainer. Only the file's `__main__` block, run in the plugin to hand the
    run its model and data (lightning/_block_run.py), makes one: a BlockTrainer."""

    def __new__(cls, *args, **kwargs):
        from .. import _block_run

        captured = _block_run.ACTIVE[0]
        if captured is None:
            raise NotImplementedError("lightning.Trainer inside a plugin: lthost is the Trainer (`lthost fit model.wasm ...`)")
        if args:  # Lightning's Trainer takes its settings by name only
            raise TypeError(f"Trainer.__init__() takes 1 positional argument but {len(args) + 1} were given")
        return _block_run.BlockTrainer(captured, **kwargs)
