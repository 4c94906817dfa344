"""A Lightning file's `__main__` block run inside the plugin when a run starts, for what only
running it gives: the DataLoaders it hands to `trainer.fit(model, train_loader, val_loader)`
(Lightning's quickstart shape) and a model made with arguments no reader can take
(`LitAutoEncoder(encoder, decoder)`). `lthost build` compiles the block
(`lightning/_main_block.py` says when it is needed); `configure` runs it.

The block runs as `python model.py` runs it, in the run's sandbox, up to the trainer call of
the run's stage (`trainer.fit` for `lthost fit`, `trainer.test` for `lthost test`; its
`trainer.fit` when it makes no call of that stage): that call raises `Reached`, so nothing
after it runs. Its trainer calls before that one return at once.
While it runs, `L.Trainer(...)` makes a `BlockTrainer` (its arguments were read at build and
are the plugin's defaults), Lightning's built-in callbacks, loggers and strategies are inert
(read at build too), `seed_everything(n)` seeds with the run's seed (n unless `--seed` says
otherwise), and the chosen LightningModule and LightningDataModule classes take the run's
hyper-parameters over the block's arguments where they differ (`--set model.lr=...`).

What the block hands over: the model passed to the trainer call (else the last one it made),
the LightningDataModule passed to it (else the last one made), and per split the DataLoaders
passed (Lightning's `train_dataloaders`, `val_dataloaders`, `dataloaders`); splits it passed
none for come from the model's or the data module's `*_dataloader`, as in Lightning."""

import functools
import inspect
import sys

import torch

# The block run under way (a Captured), for `Trainer`, `seed_everything` and the inert
# built-ins (lightning/pytorch/core.py, torch/_core.py).
ACTIVE = [None]
# What the block handed over, once run (None: it did not run).
DONE = [None]


class Reached(BaseException):
    """The block reached the trainer call of the run's stage. A BaseException, so a user's
    `except Exception:` around the call does not keep the block running."""


class Captured:
    def __init__(self, stage, seed, classes):
        self.stage = stage
        self.seed = seed
        self.classes = [c for c in classes if c is not None]
        self.model = None
        self.datamodule = None
        self.loaders = {}  # split -> what the trainer call was given
        self.made = {}  # class -> the last instance the block made
        self.bound = {}  # class -> the arguments its last instance was made with, defaults included
        self.reached = None  # the stage's call, once reached
        self.callbacks = []  # the file's own callbacks given to the trainer that made the call

    def called(self, trainer, name, model, loaders, datamodule):
        """A trainer call of the block, its arguments as Lightning 2.6.6 takes them: keeps what
        it hands Lightning (each call's data in place of the one before, as Lightning attaches
        data per call) and the trainer's own callbacks; stops the block at the call of the
        run's stage."""
        from .pytorch.core import LightningDataModule

        first = next(iter(loaders))
        if isinstance(loaders[first], LightningDataModule):  # `trainer.fit(model, dm)`
            datamodule, loaders[first] = loaders[first], None
        loaders = {split: given for split, given in loaders.items() if given is not None}
        if loaders and datamodule is not None:
            raise RuntimeError(f"You cannot pass both dataloaders and a datamodule to `trainer.{name}` (Lightning's "
                               f"MisconfigurationException)")
        if model is not None:
            self.model = model
        self.datamodule = datamodule
        self.loaders = loaders
        self.callbacks = _own_callbacks(trainer._callbacks)
        if name == self.stage:
            self.reached = name
            raise Reached()
        if name in ("validate", "test"):  # a results dict per DataLoader
            given = next(iter(loaders.values()), None)
            return [{} for _ in given] if isinstance(given, (list, tuple)) else [{}]
        return None if name == "fit" else []


class Inert:
    """A trainer's attribute while the block runs (`trainer.checkpoint_callback`)."""

    __getattr__ = torch._core.read_as_none


class BlockTrainer:
    """`L.Trainer(...)` while the block runs: its calls hand the block's model and data over."""

    def __init__(self, captured, callbacks=None, **settings):
        # (The other settings were read at build: they are the plugin's defaults.)
        from .pytorch.core import Callback

        self._captured = captured
        # The block may add to `trainer.callbacks` before its call: one list.
        self._callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or ())
        self.callback_metrics, self.logged_metrics, self.progress_bar_metrics = {}, {}, {}
        self.checkpoint_callback = self.logger = self.early_stopping_callback = Inert()
        self.callbacks, self.loggers = self._callbacks, []
        self.current_epoch = self.global_step = 0

    def fit(self, model, train_dataloaders=None, val_dataloaders=None, datamodule=None, ckpt_path=None,
            weights_only=None):
        return self._captured.called(self, "fit", model, {"train": train_dataloaders, "val": val_dataloaders}, datamodule)

    def validate(self, model=None, dataloaders=None, ckpt_path=None, verbose=True, datamodule=None, weights_only=None):
        return self._captured.called(self, "validate", model, {"val": dataloaders}, datamodule)

    def test(self, model=None, dataloaders=None, ckpt_path=None, verbose=True, datamodule=None, weights_only=None):
        return self._captured.called(self, "test", model, {"test": dataloaders}, datamodule)

    def predict(self, model=None, dataloaders=None, datamodule=None, return_predictions=None, ckpt_path=None,
                weights_only=None):
        return self._captured.called(self, "predict", model, {"predict": dataloaders}, datamodule)

    def __getattr__(self, name):
        raise AttributeError(f"trainer.{name}: in lthost the __main__ block runs only to hand the run its model and "
                             f"data (up to trainer.{self._captured.stage}); the run is lthost's")


def check_callback(cb, where):
    """Refuses what cannot be one of the run's callbacks: not a Callback, or a subclass of one
    of Lightning's built-ins (lthost runs its own built-in; the subclass's overrides would not
    run)."""
    from .pytorch.core import Callback

    if not isinstance(cb, Callback):
        raise TypeError(f"{where}: {type(cb).__name__} is not a Callback")
    cls = type(cb)
    if getattr(cls, "_lt_builtin", False) and not cls.__dict__.get("_lt_builtin", False):
        base = next(c for c in cls.__mro__ if c.__dict__.get("_lt_builtin", False))
        raise NotImplementedError(f"{cls.__name__}: a subclass of Lightning's {base.__name__}; lthost runs its own "
                                  f"{base.__name__} (configured from the Trainer's arguments), so the subclass's "
                                  f"overrides would not run")


def _own_callbacks(given):
    """The file's own callbacks among a Trainer's `callbacks` (one callback or a list), in
    order: Lightning's built-ins are lthost's, read at build."""
    for cb in given:
        check_callback(cb, "Trainer(callbacks=...)")
    return [cb for cb in given if not type(cb).__dict__.get("_lt_builtin", False)]


def _plain(v):
    """Whether `v` is a value a config holds (hyper-parameters can stand in for it)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_plain(x) for x in v)
    return isinstance(v, dict) and all(isinstance(k, str) and _plain(x) for k, x in v.items())


def _watch(cls, given, captured, json_safe):
    """While the block runs, `cls(...)` takes the run's hyper-parameters `given` over the
    block's arguments where they differ, and the instance and its arguments (defaults
    included) are kept. Returns the undo."""
    own = cls.__dict__.get("__init__")
    init = cls.__init__
    sig = inspect.signature(init)
    named = {n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    @functools.wraps(init)  # its signature is the class's (save_hyperparameters reads it)
    def __init__(self, *args, **kwargs):
        if type(self) is cls:
            try:
                bound = sig.bind(self, *args, **kwargs)
            except TypeError:
                bound = None  # the class's own call raises it
            if bound is not None:
                for k, v in given.items():
                    if k not in named:
                        continue
                    if k not in bound.arguments or (_plain(bound.arguments[k]) and json_safe(bound.arguments[k]) != v):
                        # (An object argument, `encoder=nn.Sequential(...)`, stays: a checkpoint's
                        # hyper-parameters hold only its repr.)
                        bound.arguments[k] = v
                args, kwargs = bound.args[1:], bound.kwargs
                made = sig.bind(self, *args, **kwargs)
                made.apply_defaults()
                captured.bound[cls] = made
            captured.made[cls] = self
        init(self, *args, **kwargs)

    cls.__init__ = __init__

    def undo():
        if own is None:
            del cls.__init__
        else:
            cls.__init__ = own

    return undo


def run(block, stage, model_cls, data_cls, given, json_safe):
    """Runs the compiled block (`block`: {"code", "globals", "file", "calls"}) for `stage`:
    up to its trainer call of that stage, or its `trainer.fit` when it makes none (`lthost
    validate` of a block that fits with val_dataloaders). What it handed over (a Captured,
    also kept in DONE)."""
    seed = torch.initial_seed()
    stage = stage if stage in block["calls"] else "fit"
    captured = Captured(stage, seed, [model_cls, data_cls])
    # The run's hyper-parameters are the module's (the data module's reach its `setup`).
    undo = [_watch(c, given if c is model_cls else {}, captured, json_safe) for c in captured.classes]
    argv = sys.argv
    sys.argv = [block["file"]]
    ACTIVE[0] = captured
    torch._core.BLOCK_RUNNING[0] = True
    try:
        exec(block["code"], block["globals"])
    except Reached:
        pass
    except SystemExit as e:  # argparse's error exit, sys.exit() before the call
        raise RuntimeError(f"the __main__ block exited ({e.code}) before trainer.{stage}") from None
    finally:
        ACTIVE[0] = None
        torch._core.BLOCK_RUNNING[0] = False
        sys.argv = argv
        for u in reversed(undo):
            u()
    if captured.model is None:
        captured.model = captured.made.get(model_cls)
    if captured.datamodule is None and not captured.loaders and data_cls is not None:
        captured.datamodule = captured.made.get(data_cls)
    if captured.model is None:
        raise RuntimeError(f"the __main__ block made no {model_cls.__name__} (it ran to its end without trainer.{stage})")
    if not isinstance(captured.model, model_cls):
        raise RuntimeError(f"the __main__ block's trainer.{stage} got a {type(captured.model).__name__}; "
                           f"this plugin's LightningModule is {model_cls.__name__}")
    if captured.reached is None and stage == "fit":
        raise RuntimeError("the __main__ block ran to its end without trainer.fit")
    DONE[0] = captured
    return captured


def loaders(split):
    """The DataLoaders the block's trainer calls gave for `split` (None: none, the model's or
    the data module's `*_dataloader` gives them)."""
    done = DONE[0]
    return None if done is None else done.loaders.get(split)
