"""A Lightning file as an lthost component: the exports (`lt:plugin/lightning-module`,
`lt:plugin/data-module`) over the user's LightningModule and LightningDataModule classes.
`lthost build` writes the app module that imports the file and calls `use`."""

import ast
import functools
import inspect
import json
import math
import numbers
import traceback
from collections.abc import Mapping

import torch
from componentize_py_types import Err
from torch.utils import data as _data
from wit_world import exports as _exports
from wit_world.exports import data_module as _dm
from wit_world.exports import lightning_module as _lm
from wit_world.imports import optimization as _opt
from wit_world.imports import parameters as _params
from wit_world.imports import trainer as _trainer
from wit_world.imports.types import AttrValue_Float, AttrValue_Int, SavedHparams, Stage

from . import _block_run, _script
from .pytorch import core as _core
from .pytorch.core import LightningDataModule as _UserData
from .pytorch.core import LightningModule as _UserModule

_classes = {}
# The user's objects once built: shared with `self.trainer` (`lightning_module`, `datamodule`).
_live = _core._LIVE
# Per DataLoader (`_key`), the structure of its batches.
_structure = {}
# Per DataLoader (`_key`), the user's (its items and streams are made when the host asks).
_loaders = {}
# Per DataLoader (`_key`), the batches of the stream's pass under way.
_passes = {}


def _key(name, index):
    """A split's DataLoader `index`: `val` for the first (Lightning's only one, mostly), `val:1` after."""
    return name if not index else f"{name}:{index}"


def _current(split):
    """The key of the DataLoader the batch being processed comes from."""
    return _key(split, _trainer.dataloader_idx() or 0)
_STAGES = {Stage.FIT: "fit", Stage.VALIDATE: "validate", Stage.TEST: "test", Stage.PREDICT: "predict", Stage.SANITY_CHECK: "fit"}
_SPLITS = {_dm.Split.TRAIN: "train", _dm.Split.VAL: "val", _dm.Split.TEST: "test", _dm.Split.PREDICT: "predict"}


def describe(e):
    """`Type: message (model.py, line N, in fn)`: the exception and the last line of the user's
    own code it came through (the SDK's packages live under the component's first path)."""
    text = f"{type(e).__name__}: {e}"
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("/0/") and not f.filename.endswith("lthost_app.py")]
    if frames:
        f = frames[-1]
        name = f.filename.split("/", 2)[-1] if f.filename.startswith("/") else f.filename
        text += f" ({name}, line {f.lineno}, in {f.name})"
    return text


def reported(export):
    """An export without an error result: an exception ends the hook through `trainer.fail`
    with `describe`'s text, instead of a bare trap."""

    @functools.wraps(export)
    def call(*args):
        try:
            return export(*args)
        except Err as e:
            _trainer.fail(str(e.value))
            raise
        except Exception as e:  # noqa: BLE001  (any uncaught exception of the user's code)
            traceback.print_exception(e)
            _trainer.fail(describe(e))
            raise

    return call


def stepped(export):
    """A step export with an error result: an exception fails the step with `describe`'s text
    and leaves the component usable (the host may go on: the batch-size finder takes an
    out-of-memory error as a trial that did not fit)."""

    @functools.wraps(export)
    def call(*args):
        try:
            return export(*args)
        except Err:
            raise
        except Exception as e:  # noqa: BLE001  (any uncaught exception of the user's code)
            traceback.print_exception(e)
            raise Err(describe(e))

    return call


def use(module, model=None, data=None):
    """Makes the LightningModule (and LightningDataModule) subclass defined in `module` this
    component's; `model`/`data` name them when the file defines several."""

    def pick(base, name, what):
        # Defined in the file, or in a package's own modules (`pkg/__init__.py` importing
        # from `pkg/model.py`); else one it imports and makes (`model = BoringModel()`).
        every = list(dict.fromkeys(c for c in vars(module).values()
                                   if inspect.isclass(c) and issubclass(c, base) and c is not base))
        found = [c for c in every if c.__module__ == module.__name__ or c.__module__.startswith(module.__name__ + ".")]
        if not found:
            found = [c for c in every if c.__name__ in made_by_file]
        if name is not None:
            found = [c for c in found if c.__name__ == name]
            if not found:
                raise RuntimeError(f"{module.__name__} defines no {what} named {name}")
        leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
        if len(leaves) > 1:
            raise RuntimeError(f"{module.__name__} defines several {what} classes ({', '.join(c.__name__ for c in leaves)}): pick one with --{'model' if base is _UserModule else 'data'}")
        return leaves[0] if leaves else None

    try:
        made_by_file = _script.called_names(ast.parse(inspect.getsource(module)))
    except (OSError, TypeError, SyntaxError):
        made_by_file = set()
    _classes["module"] = pick(_UserModule, model, "LightningModule")
    _classes["data"] = pick(_UserData, data, "LightningDataModule")
    if _classes["module"] is None:
        raise RuntimeError(f"{module.__name__} defines no LightningModule subclass")


def read_main_block(module, app_file):
    """At `lthost build`: what the file's `__main__` block gives Lightning, written beside the
    app module for lthost build to check and keep (`_main_block.py`)."""
    import os

    from . import _main_block

    try:
        found = _main_block.read(module, _classes["module"], _classes["data"])
        if found["feeds"] or found["makes_model"]:
            # Kept for `configure`, which runs it when the run needs what only running gives.
            _classes["block"] = {"code": _main_block.compiled(module), "globals": vars(module),
                                 "file": getattr(module, "__file__", None) or "model.py", "feeds": bool(found["feeds"]),
                                 "data_first": bool(found["data_first"]), "calls": found["calls"],
                                 "callbacks": bool(found["callbacks"])}
        text = json.dumps(found, allow_nan=False)
    except Exception as e:  # the block is the file's own business: it never fails the build
        text = json.dumps({"items": [], "notes": [{"line": 0, "text": f"the __main__ block is not read ({type(e).__name__}: {e})"}],
                           "file": os.path.basename(getattr(module, "__file__", None) or "model.py")})
    with open(os.path.join(os.path.dirname(app_file), "lthost_main_block.json"), "w") as f:
        f.write(text)


def _arguments(cls, hparams):
    """The keyword arguments `cls` is made with from the run's hyper-parameters (its defaults
    under them, keys it does not take dropped), and the names it needs that are not there."""
    sig = inspect.signature(cls.__init__)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    takes_all = any(p.kind == p.VAR_KEYWORD for p in params)
    names = [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    defaults = {p.name: p.default for p in params if p.default is not p.empty and p.kind != p.VAR_KEYWORD}
    given = json.loads(hparams)
    unknown = [k for k in given if k not in names and not takes_all]
    effective = {**defaults, **{k: v for k, v in given.items() if k not in unknown}}
    return effective, [n for n in names if n not in effective]


def _instantiate(cls, hparams):
    effective, missing = _arguments(cls, hparams)
    if missing:
        raise TypeError(f"{cls.__name__}.__init__ needs {', '.join(missing)}: give them as hyper-parameters (--hparams)")
    obj = cls.__new__(cls)
    obj.__init__(**effective)
    return obj


def _made(cls, hparams):
    """The LightningModule of the run: made from the hyper-parameters, or by the file's
    `__main__` block when only running it gives what the run needs (the DataLoaders its
    trainer call is handed, arguments no reader can take: lightning/_block_run.py)."""
    if _block_runs(hparams):
        stage = _STAGES[_trainer.current_stage()]
        return _block_run.run(_classes["block"], stage, cls, _classes.get("data"), json.loads(hparams), _json_safe).model
    return _instantiate(cls, hparams)


def _block_runs(hparams):
    """Whether the file's `__main__` block makes the run's model and data (`_made`): for the
    DataLoaders its trainer call is handed, the module's arguments only it gives, a data
    module it makes before the module (whose random draws come first, as in Python), or the
    file's own callbacks its trainer is given."""
    block = _classes.get("block")
    return _block_needed(hparams) or bool(block is not None and (block["data_first"] or block["callbacks"]))


def _block_needed(hparams):
    """Whether only running the block gives what the run needs (its DataLoaders, the module's
    arguments): a DataLoader worker, which runs no block, cannot make those itself."""
    block = _classes.get("block")
    return block is not None and bool(block["feeds"] or _arguments(_classes["module"], hparams)[1])


def _data_remade(block, cls, hparams):
    """The data module made anew when the run's data hyper-parameters differ from the
    arguments (defaults included) the block made it with (a config's `data: {batch_size: 8}`, a
    batch-size trial): the block's arguments, objects too, with the run's over them. None when
    they agree (the block's data module is the run's)."""
    if cls is None or not isinstance(block.datamodule, cls):
        return None
    bound = block.bound.get(cls)
    if bound is None:
        return None
    changed = {k: v for k, v in json.loads(hparams).items()
               if k in bound.arguments and _json_safe(bound.arguments[k]) != v}
    if not changed:
        return None
    bound.arguments.update(changed)
    return cls(*bound.args[1:], **bound.kwargs)


def _json_safe(v):
    """`v` as JSON holds it: a non-finite float, and anything JSON has no form for (a tuple
    stays a list), as its repr."""
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


def _saved(obj):
    """What `obj` saved with `save_hyperparameters` (Lightning's `hparams_initial`) as JSON,
    and whether the loggers get it; nothing, not logged, for `None`."""
    if obj is None:
        return SavedHparams(hparams="{}", log=False)
    log = bool(obj.__dict__.get("_log_hyperparams", False))
    return SavedHparams(hparams=json.dumps(_json_safe(dict(obj.hparams_initial))), log=log)


def _register(model):
    """Hands the module's parameters and buffers to the host by their state_dict paths, in
    torch's state_dict order (each module's parameters, then its buffers, then its children);
    a tensor under two paths stays one tensor (tying); each keeps its Python object and its
    `requires_grad` (a frozen parameter stays frozen) and each layer its mode (a layer put
    in eval mode shows so in the model summary)."""
    for mp, m in model.named_modules(remove_duplicate=False):
        if mp:
            _params.register_module(mp, type(m).__name__)
            if not m.training:
                _params.set_module_training(mp, False)
        for name, p in m._parameters.items():
            if p is None:
                continue
            path = f"{mp}.{name}" if mp else name
            trainable = p.requires_grad
            try:
                h = _params.register_parameter(path, p._h)
            except Err as e:
                raise RuntimeError(f"register_parameter `{path}`: {e.value}") from None
            if "_lt_path" not in p.__dict__:
                p.__dict__["_lt_path"] = path
                p._h = h
                if not trainable:
                    p.requires_grad_(False)
        for name, b in m._buffers.items():
            if b is None:
                continue
            path = f"{mp}.{name}" if mp else name
            try:
                h = _params.register_buffer(path, b._h, name not in m._non_persistent_buffers_set)
            except Err as e:
                raise RuntimeError(f"register_buffer `{path}`: {e.value}") from None
            if "_lt_path" not in b.__dict__:
                b.__dict__["_lt_path"] = path
                b._h = h


# Lightning hooks and overrides the host does not call: a module that overrides one is
# refused when it is built, rather than silently not run.
_NOT_CALLED = (
    "optimizer_step", "optimizer_zero_grad", "configure_gradient_clipping", "lr_scheduler_step", "backward",
)


def _refuse_unsupported(cls):
    for name in _NOT_CALLED:
        if getattr(cls, name, None) is not None and getattr(cls, name) is not getattr(_UserModule, name, None):
            raise NotImplementedError(f"{cls.__name__}.{name}: lthost does not call this LightningModule hook yet")


def _has_attr(obj, name):
    """Lightning's `lightning_hasattr` for one object: an attribute, or a key of its hparams."""
    return hasattr(obj, name) or (hasattr(obj, "hparams") and name in obj.hparams)


def _set_attr(obj, name, value):
    """Lightning's `lightning_setattr` for one object: every holder `_has_attr` finds. The
    host's number arrives as the WIT's `attr-value` (an int stays an int: a batch size)."""
    value = value.value if isinstance(value, (AttrValue_Int, AttrValue_Float)) else value
    if hasattr(obj, name):
        setattr(obj, name, value)
    if hasattr(obj, "hparams") and name in obj.hparams:
        obj.hparams[name] = value


def _get_attr(obj, name):
    """Lightning's `lightning_getattr` for one object: the last holder's value (the
    hyper-parameter over the attribute), as the WIT's `attr-value`; None when neither holds
    a number."""
    value = None
    if hasattr(obj, name):
        value = getattr(obj, name)
    if hasattr(obj, "hparams") and name in obj.hparams:
        value = obj.hparams[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return AttrValue_Int(int(value)) if -(2**63) <= int(value) < 2**63 else None
    return AttrValue_Float(float(value))


def _module():
    m = _live.get("module")
    if m is None:
        raise RuntimeError("lthost called a module hook before configure")
    return m


# ---- configure_optimizers ----
def _algorithm(opt):
    d = opt.defaults
    name = type(opt).__name__
    if not opt.in_host():
        if type(opt).step is torch.optim.Optimizer.step:
            raise NotImplementedError(f"optimizer {name} defines no `step`")
        m = d["betas"][0] if "betas" in d else d.get("momentum")
        return _lm.Algorithm_Plugin(_lm.PluginOptimizer(name, float(d.get("lr", 0.0)), None if m is None else float(m)))
    if isinstance(opt, torch.optim.SGD):
        return _lm.Algorithm_Sgd(_lm.Sgd(d["lr"], d["momentum"], d["dampening"], d["weight_decay"], d["nesterov"]))
    if isinstance(opt, torch.optim.Adam):
        a = _lm.Adam(d["lr"], tuple(d["betas"]), d["eps"], d["weight_decay"], d["amsgrad"])
        return _lm.Algorithm_Adamw(a) if opt._decoupled else _lm.Algorithm_Adam(a)
    if isinstance(opt, torch.optim.RMSprop):
        return _lm.Algorithm_Rmsprop(_lm.Rmsprop(d["lr"], d["alpha"], d["eps"], d["weight_decay"], d["momentum"], d["centered"]))
    if isinstance(opt, torch.optim.Adagrad):
        return _lm.Algorithm_Adagrad(_lm.Adagrad(d["lr"], d["lr_decay"], d["weight_decay"], d["initial_accumulator_value"], d["eps"]))
    raise NotImplementedError(f"optimizer {name}: lthost runs SGD, Adam, AdamW, RMSprop and Adagrad in the host, and a subclass with its own `step` in the plugin")


_SCHEDULER_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


def _optimizer(opt, model):
    everything = [id(p) for p in model.parameters() if p.requires_grad]
    groups = []
    in_plugin = not opt.in_host()
    for g in opt.param_groups:
        paths = []
        for p in g["params"]:
            path = p.__dict__.get("_lt_path")
            if path is None:
                raise RuntimeError("the optimizer was given a tensor that is not a parameter of the LightningModule")
            paths.append(path)
        if in_plugin:  # its own options are its own; the host keeps each group's lr, in order
            groups.append(_lm.ParamGroup(paths, float(g.get("lr", 0.0)), None))
            continue
        for k, v in g.items():
            if k in _SCHEDULER_KEYS or (k in ("momentum", "betas") and "base_momentum" in g):
                continue  # a scheduler's; it applies them itself
            if k not in ("params", "lr", "weight_decay") and v != opt.defaults.get(k):
                raise NotImplementedError(f"parameter group option `{k}`: lthost groups override lr and weight_decay only")
        lr = g["lr"] if g["lr"] != opt.defaults["lr"] else None
        wd = g["weight_decay"] if g["weight_decay"] != opt.defaults["weight_decay"] else None
        groups.append(_lm.ParamGroup(paths, lr, wd))
    flat = [id(p) for g in opt.param_groups for p in g["params"]]
    if len(groups) == 1 and not in_plugin and groups[0].lr is None and groups[0].weight_decay is None and sorted(flat) == sorted(everything):
        groups = []
    return _lm.Optimizer(_algorithm(opt), groups)


def _scheduler(s, index, interval="epoch", frequency=1, monitor=None, strict=True):
    """Every torch scheduler runs in the plugin (torch.optim.lr_scheduler); the host steps it."""
    from torch.optim import lr_scheduler as L

    if not isinstance(s, L.LRScheduler):
        raise TypeError(f"{type(s).__name__} is not a torch.optim.lr_scheduler.LRScheduler")
    if interval not in ("epoch", "step"):
        raise ValueError(f'lr_scheduler interval must be "epoch" or "step", got {interval!r}')
    w = _lm.Scheduler_Plugin(_lm.PluginScheduler(type(s).__name__, isinstance(s, L.ReduceLROnPlateau)))
    return _lm.LrScheduler(w, index, _lm.Interval.STEP if interval == "step" else _lm.Interval.EPOCH, frequency, monitor, strict)


def _optimization(model, returned):
    """Lightning's configure_optimizers return forms as the host's record."""
    opts, scheds = [], []  # scheds: (scheduler, config dict)
    if returned is None:
        pass
    elif isinstance(returned, torch.optim.Optimizer):
        opts = [returned]
    elif isinstance(returned, dict):
        opts = [returned["optimizer"]]
        if "lr_scheduler" in returned:
            scheds.append(_sched_config(returned["lr_scheduler"], returned.get("monitor")))
    elif isinstance(returned, (list, tuple)) and len(returned) == 2 and isinstance(returned[0], (list, tuple)):
        opts = list(returned[0])
        scheds = [_sched_config(s, None) for s in returned[1]]
    elif isinstance(returned, (list, tuple)) and returned and all(isinstance(r, dict) for r in returned):
        for r in returned:
            opts.append(r["optimizer"])
            if "lr_scheduler" in r:
                scheds.append(_sched_config(r["lr_scheduler"], r.get("monitor")))
    elif isinstance(returned, (list, tuple)) and all(isinstance(r, torch.optim.Optimizer) for r in returned):
        opts = list(returned)
    else:
        raise TypeError(f"configure_optimizers returned {type(returned).__name__}, which is not one of Lightning's forms")
    for i, o in enumerate(opts):
        o._index, o._schedulers, o._manual = i, [], not model.automatic_optimization
    records = [_optimizer(o, model) for o in opts]
    wit_scheds = []
    for s, cfg in scheds:
        index = next((i for i, o in enumerate(opts) if o is s.optimizer), None)
        if index is None:
            raise RuntimeError("an lr scheduler drives an optimizer configure_optimizers did not return")
        opts[index]._schedulers.append(s)
        wit_scheds.append(_scheduler(s, index, cfg.get("interval", "epoch"), cfg.get("frequency", 1), cfg.get("monitor"), cfg.get("strict", True)))
    model.__dict__["_lt_optimizers"] = opts
    model.__dict__["_lt_schedulers"] = [s for s, _ in scheds]
    if len(opts) > 1 and model.automatic_optimization:
        raise RuntimeError("several optimizers need manual optimization (self.automatic_optimization = False), as in Lightning")
    return _lm.Optimization(records, wit_scheds, bool(model.automatic_optimization))


def _sched_config(s, monitor):
    if isinstance(s, dict):
        cfg = dict(s)
        cfg.setdefault("monitor", monitor)
        return cfg["scheduler"], cfg
    return s, {"monitor": monitor}


# ---- batches ----
def _batch(batch, split):
    """The file's batch: the host's tensors in the structure the DataLoader made, or what the
    batch-transfer hooks made of it."""
    replaced = _transferred.get(split)
    if replaced is not None:
        return replaced
    leaves = [torch._core.wrap(h) for h in batch]
    structure = _structure.get(_current(split))
    if structure is None:
        return leaves
    return _data.unflatten(structure, leaves)


# Per split, the current batch as the batch-transfer hooks returned it.
_transferred = {}
_TRANSFER_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")
_STAGE_SPLITS = {Stage.FIT: "train", Stage.VALIDATE: "val", Stage.SANITY_CHECK: "val", Stage.TEST: "test", Stage.PREDICT: "predict"}


def _transfer_hook(name):
    """The file's override of batch hook `name`, as Lightning picks it: the DataModule's when
    it overrides the hook, else the LightningModule's; None when neither does. (Asked before
    the DataModule exists too: by class.)"""
    data_cls, module_cls = _classes.get("data"), _classes.get("module")
    if data_cls is not None and getattr(data_cls, name) is not getattr(_UserData, name):
        return lambda *args: getattr(_data_source(), name)(*args)
    if module_cls is not None and getattr(module_cls, name) is not getattr(_UserModule, name):
        return lambda *args: getattr(_module(), name)(*args)
    return None


def _transfer(m, hook, split):
    """Lightning's batch transfer around the host's: before, `on_before_batch_transfer` then
    `transfer_batch_to_device` (to the run's device); after, `on_after_batch_transfer`. The
    batch they return is the one the step and the batch hooks get."""
    before = hook == _lm.Hook.ON_BEFORE_BATCH_TRANSFER
    _transferred.pop(split, None)
    batch = None if before else _pending.pop(split, None)
    if batch is None:
        batch = _batch(_trainer.current_batch(), split)
    for name in _TRANSFER_HOOKS[:2] if before else _TRANSFER_HOOKS[2:]:
        fn = _transfer_hook(name)
        if fn is not None:
            dl = _trainer.dataloader_idx() or 0
            batch = fn(batch, m.device, dl) if name == "transfer_batch_to_device" else fn(batch, dl)
    if before:
        _pending[split] = batch
    else:
        _transferred[split] = batch


# Per split, the batch between the two transfer hooks.
_pending = {}


_saved_modes = {}


def _evaluating(model):
    """Lightning's eval for an evaluation loop: each module's own mode is kept, to be put
    back when training resumes (a submodule frozen with `.eval()` stays in eval)."""
    if not _saved_modes:
        for m in model.modules():
            _saved_modes[id(m)] = (m, m.training)
        model.eval()


def _training(model):
    if _saved_modes:
        for m, mode in _saved_modes.values():
            m.__dict__["training"] = mode
        _saved_modes.clear()


_takes_idx = {}
# Per hook or step, whether it takes `dataloader_idx` and whether without a default.
_dl_params = {}
_PREFIXES = {"validation": "val", "test": "test", "predict": "predict"}


def _dataloader_idx(model, name):
    """The `dataloader_idx` Lightning passes hook or step `name`: the batch's DataLoader when
    its split has several (None with one), after Lightning's check of the signature: with
    several DataLoaders it must take `dataloader_idx`; with one, give it a default."""
    dl = _trainer.dataloader_idx()
    sig = _dl_params.get(name)
    if sig is None:
        fn = getattr(model, name)
        spec = inspect.getfullargspec(getattr(fn, "__wrapped__", fn))
        params = inspect.signature(fn).parameters
        required = "dataloader_idx" in params and params["dataloader_idx"].default is inspect.Parameter.empty
        sig = _dl_params[name] = ("dataloader_idx" in spec.args[1:] or spec.varargs is not None, required)
    present, required = sig
    prefix = next((p for k, p in _PREFIXES.items() if k in name), "val")
    if dl is None and present:
        if required:
            raise RuntimeError(f"You provided only a single `{prefix}_dataloader`, but have included `dataloader_idx` in `{type(model).__name__}.{name}()`. Either remove the argument or give it a default value i.e. `dataloader_idx=0`.")
    elif dl is not None and not present:
        raise RuntimeError(f"You provided multiple `{prefix}_dataloader`, but no `dataloader_idx` argument in `{type(model).__name__}.{name}()`. Try adding `dataloader_idx=0` to its signature.")
    return dl


def _step(model, name, batch, batch_idx):
    """Calls `model.<name>(batch, batch_idx)` (with `dataloader_idx` when the split has several
    DataLoaders), or `(batch)` when the step takes no index (as Lightning looks at the
    signature)."""
    fn = getattr(model, name)
    takes = _takes_idx.get(name)
    if takes is None:
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        takes = _takes_idx[name] = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
    dl = None if name == "training_step" else _dataloader_idx(model, name)
    if dl is not None:
        return fn(batch, batch_idx, dl)
    return fn(batch, batch_idx) if takes else fn(batch)


def _loss(out, automatic=True):
    """The loss the host gets from training_step's output, refused as Lightning refuses it."""
    if out is None:
        return None
    if isinstance(out, Mapping):
        if out.get("loss") is None:
            if not automatic:
                return None
            raise RuntimeError("In automatic_optimization, when `training_step` returns a dict, the 'loss' key needs to be present")
        out = out["loss"]
    if not isinstance(out, torch.Tensor):
        if automatic:
            raise RuntimeError("In automatic optimization, `training_step` must return a Tensor, a dict, or None (where the step will be skipped).")
        raise RuntimeError("In manual optimization, `training_step` must either return a Tensor or have no return.")
    # A handle of its own for the host: returning one moves it, and the loss stays the
    # file's (kept in an attribute, passed to on_before_backward and on_train_batch_end).
    return out._h.share()


# The last step's output per split: what the batch-end hooks get as `outputs` (a training
# step's made into Lightning's form only when a hook asks for it).
_OUTPUTS = {}


def _train_loss(m):
    """The loss as Lightning's backward gets it (on_before_backward): divided by
    accumulate_grad_batches in automatic optimization."""
    out = _OUTPUTS.get("train")
    loss = out.get("loss") if isinstance(out, Mapping) else out
    if not isinstance(loss, torch.Tensor) or not m.automatic_optimization:
        return loss
    acc = _trainer.fit_numbers().accumulate_grad_batches
    return loss / acc if acc > 1 else loss


# Per optimizer class, whether its `step` takes a closure (asked at every step: kept).
_TAKES_CLOSURE = {}


def _takes_closure(optimizer):
    cls = type(optimizer)
    takes = _TAKES_CLOSURE.get(cls)
    if takes is None:
        params = inspect.signature(cls.step).parameters.values()
        takes = _TAKES_CLOSURE[cls] = any(p.name == "closure" or p.kind == p.VAR_KEYWORD for p in params)
    return takes


# The training batch (as the step got it) and its index, for Lightning's closure to re-run.
_TRAIN_BATCH = {}


class _AutomaticClosure:
    """Lightning's closure in automatic optimization, for an optimizer the plugin runs: the
    first call is the batch's training_step and backward, which the host already ran (their
    loss, detached, as backward got it); each later call (an optimizer that re-evaluates,
    such as LBFGS) runs training_step on the batch again, zeroes the optimizer's gradients
    (on an accumulation window's first batch, as Lightning) and backward, in that order."""

    def __init__(self, index):
        self.index, self.calls = index, 0

    def __call__(self):
        m = _module()
        self.calls += 1
        if self.calls == 1:
            loss = _train_loss(m)
        else:
            batch, batch_idx = _TRAIN_BATCH["batch"], _TRAIN_BATCH["idx"]
            _core._WHERE.update(split="train", in_step=True)
            with torch.enable_grad():
                out = _OUTPUTS["train"] = _step(m, "training_step", batch, batch_idx)
                loss = _train_loss(m)
                acc = _trainer.fit_numbers().accumulate_grad_batches
                if batch_idx % max(acc, 1) == 0:
                    _opt.zero_grad(self.index)
                if loss is not None:
                    _opt.manual_backward(loss._h)
        return None if loss is None else loss.detach().clone()


def _backward_loss(m):
    """The loss `on_before_backward` gets: under 16-mixed, as MixedPrecision.pre_backward
    hands it on, scaled."""
    loss, scale = _train_loss(m), _opt.loss_scale()
    if scale is not None and isinstance(loss, torch.Tensor):
        loss = loss * torch.tensor(scale, dtype=torch.float32, device=loss.device)
    return loss


def _outputs(m, split):
    """Lightning's `outputs` of the last step: for a training step in automatic optimization
    {"loss": the loss detached, as backward got it, **the step's other keys} ({} when it
    returned None); in manual optimization a copy of the step's output (a tensor as
    {"loss": it}) with "loss" detached; for the other steps what they returned."""
    out = _OUTPUTS.get(split)
    if split != "train":
        return out
    if not m.automatic_optimization:
        extra = dict(out) if isinstance(out, Mapping) else ({} if out is None else {"loss": out})
        if isinstance(extra.get("loss"), torch.Tensor):
            extra["loss"] = extra["loss"].detach()
        return extra
    loss = _train_loss(m)
    if not isinstance(loss, torch.Tensor):
        return {}
    extra = {k: v for k, v in out.items() if k != "loss"} if isinstance(out, Mapping) else {}
    return {"loss": loss.detach().clone(), **extra}


_HOOK_ARGS = {
    "setup": "stage",
    "teardown": "stage",
    "on_train_batch_start": "batch",
    "on_train_batch_end": "outputs_batch",
    "on_validation_batch_start": "batch",
    "on_validation_batch_end": "outputs_batch",
    "on_test_batch_start": "batch",
    "on_test_batch_end": "outputs_batch",
    "on_predict_batch_start": "batch",
    "on_predict_batch_end": "outputs_batch",
    "on_before_zero_grad": "optimizer",
    "on_before_optimizer_step": "optimizer",
    "on_before_backward": "loss",
}


_EPOCH_ENDS = {_lm.Hook.ON_TRAIN_EPOCH_END: "train", _lm.Hook.ON_VALIDATION_EPOCH_END: "val", _lm.Hook.ON_TEST_EPOCH_END: "test"}
_HOOK_SPLITS = (("train", "train"), ("validation", "val"), ("test", "test"), ("predict", "predict"))


class LightningModule(_exports.LightningModule):
    def configure(self, hparams):
        torch._core.RUNNING[0] = True
        torch._apply_settings()
        cls = _classes.get("module")
        if cls is None:
            raise Err("no LightningModule in this component (lthost build finds it in the file)")
        try:
            _refuse_unsupported(cls)
            m = _made(cls, hparams)
            _register(m)
            saved = _saved(m)
        except Exception as e:  # noqa: BLE001  (the user's __init__ may raise anything)
            raise Err(f"{cls.__name__}: {describe(e)}")
        _live["module"] = m
        return saved

    @reported
    def configure_optimizers(self):
        m = _module()
        return _optimization(m, m.configure_optimizers())

    @reported
    def save_state(self):
        m = _module()
        if type(m).on_save_checkpoint is _UserModule.on_save_checkpoint:
            return None
        ckpt = {}
        m.on_save_checkpoint(ckpt)
        return json.dumps(ckpt).encode() if ckpt else None

    def load_state(self, state):
        try:
            _module().on_load_checkpoint(json.loads(bytes(state).decode()))
        except Exception as e:  # noqa: BLE001
            raise Err(f"on_load_checkpoint: {describe(e)}")

    @reported
    def has_attr(self, name):
        return _has_attr(_module(), name)

    def set_attr(self, name, value):
        try:
            _set_attr(_module(), name, value)
        except Exception as e:  # noqa: BLE001  (a user's property setter may raise anything)
            raise Err(f"setting {name}: {describe(e)}")

    @reported
    def get_attr(self, name):
        return _get_attr(_module(), name)

    @reported
    def implemented_hooks(self):
        cls = type(_module())
        own = [h for h in _lm.Hook if hasattr(cls, h.name.lower()) and getattr(cls, h.name.lower()) is not getattr(_UserModule, h.name.lower(), None)]
        if any(_transfer_hook(name) is not None for name in _TRANSFER_HOOKS):
            # The host calls these two around each batch; the file's chain runs in them.
            own += [h for h in (_lm.Hook.ON_BEFORE_BATCH_TRANSFER, _lm.Hook.ON_AFTER_BATCH_TRANSFER) if h not in own]
        return own + [h for h in _EPOCH_ENDS if h not in own]  # logged Metric objects are computed there

    @reported
    def on_hook(self, hook, stage, batch_idx):
        m = _module()
        if hook in (_lm.Hook.ON_BEFORE_BATCH_TRANSFER, _lm.Hook.ON_AFTER_BATCH_TRANSFER):
            _transfer(m, hook, _STAGE_SPLITS[stage])
            return 0
        name = hook.name.lower()
        split = next((s for k, s in _HOOK_SPLITS if k in name), None)
        _core._WHERE.update(split=split, in_step="batch" in name)
        _core._HOOK_LOGGED.clear()
        r = self._user_hook(m, name, stage, batch_idx)
        if hook in _EPOCH_ENDS:
            _core.flush_metrics(m, _EPOCH_ENDS[hook])
        return r

    @staticmethod
    def _user_hook(m, name, stage, batch_idx):
        kind = _HOOK_ARGS.get(name)
        fn = getattr(m, name, None)
        if fn is None:
            return 0
        split = next((s for k, s in _HOOK_SPLITS if k in name), None)
        if kind == "stage":
            r = fn(_STAGES[stage])
        elif kind in ("batch", "outputs_batch"):
            dl = None if split == "train" else _dataloader_idx(m, name)
            args = (_batch(_trainer.current_batch(), split), batch_idx, *(() if dl is None else (dl,)))
            r = fn(*args) if kind == "batch" else fn(_outputs(m, split), *args)
        elif kind == "optimizer":
            opts = m._lt_optimizers
            r = fn(opts[0] if opts else None)
        elif kind == "loss":
            r = fn(_backward_loss(m))
        else:
            r = fn()
        return -1 if r == -1 else 0

    @stepped
    def training_step(self, batch, batch_idx):
        m = _module()
        _core._WHERE.update(split="train", in_step=True)
        _training(m)
        batch = _TRAIN_BATCH["batch"] = _batch(batch, "train")
        _TRAIN_BATCH["idx"] = batch_idx
        out = _OUTPUTS["train"] = _step(m, "training_step", batch, batch_idx)
        return _loss(out, m.automatic_optimization)

    @stepped
    def validation_step(self, batch, batch_idx):
        m = _module()
        _core._WHERE.update(split="val", in_step=True)
        _evaluating(m)
        _OUTPUTS["val"] = _step(m, "validation_step", _batch(batch, "val"), batch_idx)

    @stepped
    def test_step(self, batch, batch_idx):
        m = _module()
        _core._WHERE.update(split="test", in_step=True)
        _evaluating(m)
        _OUTPUTS["test"] = _step(m, "test_step", _batch(batch, "test"), batch_idx)

    @stepped
    def predict_step(self, batch, batch_idx):
        m = _module()
        _core._WHERE.update(split="predict", in_step=True)
        _evaluating(m)
        out = _OUTPUTS["predict"] = _step(m, "predict_step", _batch(batch, "predict"), batch_idx)
        if not isinstance(out, torch.Tensor):
            raise Err(f"predict_step returned {type(out).__name__}; lthost collects one tensor per batch")
        return out._h.share()  # the file may keep its predictions


def _lr_scheduler(index):
    s = _module()._lt_schedulers
    if index >= len(s):
        raise Err(f"lr scheduler {index} does not exist ({len(s)} configured)")
    return s[index]


class LrSchedulers(_exports.LrSchedulers):
    """The schedulers of `configure_optimizers`, stepped when the host says (Lightning's
    interval, frequency, monitor)."""

    def start(self, index):
        return self.state(index)

    def step(self, index, metric):
        s = _lr_scheduler(index)
        try:
            s.step() if metric is None else s.step(metric)
        except Exception as e:  # noqa: BLE001  (a user's lambda may raise anything)
            raise Err(f"{type(s).__name__}.step(): {describe(e)}")
        return self.state(index)

    def state(self, index):
        """Hands the host's optimizer the rates the scheduler set last (in manual
        optimization they would otherwise reach it only at the next step), and returns the
        scheduler's state_dict."""
        s = _lr_scheduler(index)
        s.optimizer._push(s._cycles_momentum)
        try:
            return json.dumps(s.state_dict())
        except (TypeError, ValueError) as e:
            raise Err(f"{type(s).__name__}.state_dict() is not JSON: {e}")

    def load_state(self, index, state):
        s = _lr_scheduler(index)
        try:
            s.load_state_dict(json.loads(state))
        except (TypeError, ValueError, KeyError) as e:
            raise Err(f"{type(s).__name__}.load_state_dict: {e}")
        s.optimizer._pull()


# A tensor's place in a saved optimizer state list (the tensor itself is saved by name).
_TENSOR = "<tensor>"


def _plugin_optimizer(index):
    opts = _module()._lt_optimizers
    if index >= len(opts) or opts[index].in_host():
        raise Err(f"optimizer {index} is not one the plugin runs")
    return opts[index]


class PluginOptimizers(_exports.PluginOptimizers):
    """A user's `torch.optim.Optimizer` subclass, stepped by the host in automatic
    optimization; its state_dict in checkpoints (tensors by name, the rest as JSON)."""

    def step(self, index):
        o = _plugin_optimizer(index)
        try:
            # As Lightning calls it: `optimizer.step(closure=...)`; under 16-mixed its
            # MixedPrecision has run the closure already and calls `scaler.step(optimizer)`.
            if _takes_closure(o) and _trainer.precision() != "16-mixed":
                o.step(closure=_AutomaticClosure(index))
            else:
                o.step()
        except Exception as e:  # noqa: BLE001  (the user's step may raise anything)
            raise Err(f"{type(o).__name__}.step(): {describe(e)}")

    def state(self, index):
        o = _plugin_optimizer(index)
        o._push(any(s._cycles_momentum for s in o._schedulers))  # the rates the checkpoint records
        sd = o.state_dict()
        tensors, rest = [], {"param_groups": sd["param_groups"], "state": {}}
        for k, s in sd["state"].items():
            for name, v in s.items():
                if isinstance(v, torch.Tensor):
                    tensors.append((f"{k}.{name}", v.detach()._h))
                elif isinstance(v, (list, tuple)) and any(isinstance(x, torch.Tensor) for x in v):
                    # A list holding tensors (LBFGS's history): each tensor by its place.
                    for i, x in enumerate(v):
                        if isinstance(x, torch.Tensor):
                            tensors.append((f"{k}.{name}.{i}", x.detach()._h))
                    rest["state"].setdefault(str(k), {})[name] = [_TENSOR if isinstance(x, torch.Tensor) else x for x in v]
                else:
                    rest["state"].setdefault(str(k), {})[name] = v
            rest["state"].setdefault(str(k), {})
        try:
            return tensors, json.dumps(rest)
        except (TypeError, ValueError) as e:
            raise Err(f"{type(o).__name__}.state_dict() holds something that is neither a tensor nor JSON: {e}")

    def load_state(self, index, tensors, rest):
        o = _plugin_optimizer(index)
        try:
            saved = json.loads(rest)
            state = {int(k): dict(v) for k, v in saved["state"].items()}
            for name, h in tensors:
                k, key = name.split(".", 1)
                state.setdefault(int(k), {})[key] = torch._core.wrap(h)
            for s in state.values():
                for name, v in list(s.items()):
                    if isinstance(v, list) and _TENSOR in v:
                        s[name] = [s.pop(f"{name}.{i}") if x == _TENSOR else x for i, x in enumerate(v)]
            o.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        except Exception as e:  # noqa: BLE001
            raise Err(f"{type(o).__name__}.load_state_dict: {describe(e)}")


def _user_loaders(name):
    """The DataLoaders the user's `{name}_dataloader` returns (a list, tuple or dict of them: Lightning's
    sequential CombinedLoader; none: no such split), kept for the items and streams asked for later."""
    for k in [k for k in _loaders if k == name or k.startswith(f"{name}:")]:
        del _loaders[k]
    loaders = _block_run.loaders(name)  # handed to the trainer call of the file's __main__ block
    if loaders is None:
        make = getattr(_data_source(), f"{name}_dataloader", None)
        loaders = None if make is None else make()
    if loaders is None:
        return []
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    elif not isinstance(loaders, (list, tuple)):
        loaders = [loaders]
    if name == "train" and len(loaders) != 1:
        raise Err(f"train_dataloader returned {len(loaders)} DataLoaders; lthost trains on one")
    for i, loader in enumerate(loaders):
        if not isinstance(loader, _data.DataLoader):
            raise Err(f"{name}_dataloader must return torch.utils.data.DataLoaders, not {type(loader).__name__}")
        loader.auto_add_worker_init_fn()
        _loaders[_key(name, i)] = loader
    return loaders


def _kept_loader(name, index, what):
    """DataLoader `index` of those `{name}_dataloader` returned, for `what` the host asks of it."""
    loader = _loaders.get(_key(name, index))
    if loader is None:
        raise Err(f"lthost asked for {what} before {name}_dataloader")
    return loader


def _handed_over(key, leaves, structure):
    """A made batch's tensors for the host, its structure kept for the step it goes to."""
    _structure[key] = structure
    # New handles: the batch's tensors may be the dataset's own, which it keeps.
    return [t._h.share() for t in leaves]


def _data_source():
    d = _live.get("data")
    if d is None:
        raise RuntimeError("lthost asked for data before setup")
    return d


def _prepare(data):
    """Lightning's `_DataConnector.prepare_data`, before any `setup`: the LightningDataModule's
    `prepare_data`, then the LightningModule's when the file overrides it, each on the ranks
    Lightning calls it on."""
    ranks = _trainer.ranks()

    def here(obj):  # Lightning's: local rank 0 of each node (`prepare_data_per_node`), else global rank 0
        return (ranks.local_rank if getattr(obj, "prepare_data_per_node", True) else ranks.global_rank) == 0

    if data is not None and here(data):
        data.prepare_data()
    m = _live.get("module")
    if m is not None and type(m).prepare_data is not _UserModule.prepare_data and here(m):
        m.prepare_data()


class DataModule(_exports.DataModule):
    def setup(self, stage, hparams):
        torch._core.RUNNING[0] = True
        cls = _classes.get("data")
        block = _block_run.DONE[0]
        try:
            if block is None and _live.get("module") is None and _block_needed(hparams):
                # A DataLoader worker's instance (the host made no model in it): the block is not run here.
                raise RuntimeError("a DataLoader worker (num_workers > 0) over an IterableDataset whose data the file's "
                                   "__main__ block makes: make it in a LightningDataModule, or give the DataLoader "
                                   "num_workers=0")
            if block is not None and block.datamodule is not None and _live.get("data") in (None, block.datamodule):
                # The data module the file's __main__ block made and handed to its trainer call
                # (made anew with the run's data hyper-parameters where they differ).
                d = _data_remade(block, cls, hparams) or block.datamodule
                block.datamodule = d
                _prepare(d)
                d.setup(_STAGES[stage])
                _live["data_hparams"] = hparams
            elif cls is None or (block is not None and block.loaders):
                # No data module (or the block's trainer call was handed DataLoaders, which
                # Lightning takes over any data module): the model's `*_dataloader`s.
                d = _live.get("module")
                if d is None:
                    raise RuntimeError("no LightningDataModule in this component, and the LightningModule is not built yet")
                _prepare(None)
            else:
                # Set up again with the same hyper-parameters (a fit after the learning-rate
                # search): the same object, as Lightning's second `trainer.fit(model, dm)`.
                d = _live.get("data")
                if not isinstance(d, cls) or _live.get("data_hparams") != hparams:
                    d = _instantiate(cls, hparams)
                _prepare(d)
                d.setup(_STAGES[stage])
                _live["data_hparams"] = hparams
            saved = _saved(d if isinstance(d, _UserData) else None)
        except Exception as e:  # noqa: BLE001  (the user's setup may raise anything)
            raise Err(f"{(cls or type(self)).__name__}.setup: {describe(e)}")
        _live["data"] = d
        return saved

    @reported
    def dataloader(self, split, index):
        name = _SPLITS[split]
        if index == 0:
            _user_loaders(name)  # asked anew: `{name}_dataloader()` runs
        loader = _loaders.get(_key(name, index))
        if loader is None or isinstance(loader.dataset, _data.IterableDataset):
            return None  # an IterableDataset: the host asks for the stream next
        try:
            record, structure = loader.record(_dm)
        except (TypeError, ValueError, NotImplementedError, RuntimeError) as e:
            raise Err(f"{name}_dataloader: {e}")
        _structure[_key(name, index)] = structure
        return record

    def fetch(self, split, index, indices, worker):
        name = _SPLITS[split]
        loader = _kept_loader(name, index, f"{name} items")
        try:
            leaves, structure = loader.fetch(indices, worker)
        except Exception as e:  # noqa: BLE001  (the user's __getitem__ and collate_fn may raise anything)
            raise Err(f"{name} DataLoader: {describe(e)}")
        return _handed_over(_key(name, index), leaves, structure)

    def sample(self, split, index, base_seed):
        name = _SPLITS[split]
        loader = _kept_loader(name, index, f"{name} indices")
        try:
            seed, batches = loader.sample(base_seed)
        except Exception as e:  # noqa: BLE001  (the user's sampler may raise anything)
            raise Err(f"{name} DataLoader's sampler: {describe(e)}")
        return _dm.SampledPass(seed, batches)

    @reported
    def streaming(self, split, index):
        name = _SPLITS[split]
        # A worker instance is asked for the stream without `dataloader` first.
        if name not in _loaders:
            _user_loaders(name)
        loader = _loaders.get(_key(name, index))
        if loader is None or not isinstance(loader.dataset, _data.IterableDataset):
            return None
        try:
            batches = len(loader)
        except TypeError:  # no __len__: each pass runs until the dataset's iterator ends
            batches = None
        return _dm.StreamSource(batches, loader.num_workers)

    def start_pass(self, split, index, worker):
        name = _SPLITS[split]
        loader = _kept_loader(name, index, f"a {name} pass")
        info = _data.WorkerInfo(worker.id, worker.num_workers, worker.seed, loader.dataset) if worker.num_workers else None
        try:
            _passes[_key(name, index)] = loader.start_pass(info)
        except Exception as e:  # noqa: BLE001  (the user's __iter__ may raise anything)
            raise Err(f"{name} DataLoader: {describe(e)}")

    def next_batch(self, split, index):
        name = _SPLITS[split]
        batches = _passes.get(_key(name, index))
        if batches is None:
            raise Err(f"lthost asked for a {name} batch before its pass began")
        try:
            batch = next(batches, None)
        except Exception as e:  # noqa: BLE001  (the user's __iter__ and collate_fn may raise anything)
            raise Err(f"{name} DataLoader: {describe(e)}")
        return None if batch is None else _handed_over(_key(name, index), *batch)

    @reported
    def has_attr(self, name):
        # A file without a LightningDataModule has none (Lightning's trainer.datamodule is None).
        d = _live.get("data")
        return isinstance(d, _UserData) and _has_attr(d, name)

    def set_attr(self, name, value):
        d = _live.get("data")
        if isinstance(d, _UserData):
            try:
                _set_attr(d, name, value)
            except Exception as e:  # noqa: BLE001
                raise Err(f"setting {name}: {describe(e)}")

    @reported
    def get_attr(self, name):
        d = _live.get("data")
        return _get_attr(d, name) if isinstance(d, _UserData) else None

    @reported
    def save_state(self):
        d = _live.get("data")
        if d is None or not isinstance(d, _UserData):
            return None
        state = d.state_dict()
        return json.dumps(state).encode() if state else None

    def load_state(self, state):
        d = _data_source()
        if isinstance(d, _UserData):
            d.load_state_dict(json.loads(bytes(state).decode()))
