"""A Lightning file's own callbacks, run in the plugin (the WIT `file-callbacks` export).

Which: the `Callback`s handed to the Trainer of the file's `__main__` block (the block runs
when a run starts: `lthost build` notes it), then those the module's `configure_callbacks`
returns, which replace the trainer's of the same type (Lightning's `_attach_model_callbacks`).
Lightning's built-in callbacks are lthost's own (read at build), never among them.

When: the host calls each hook on them before its own callbacks and before the module, with
Lightning's arguments: `trainer` (lightning/pytorch/core.py's `_TrainerState`: the run's
state, `callback_metrics`, a settable `should_stop`), the module, and the batch hooks'
`outputs, batch, batch_idx` (and `dataloader_idx` when the split has several DataLoaders).
`pl_module.log(...)` in a callback hook follows that hook's rules, as in Lightning."""

import json
import math

import torch

from componentize_py_types import Err
from wit_world import exports as _exports
from wit_world.exports import file_callbacks as _fc

from . import _block_run
from . import _component as _c
from .pytorch import core as _core
from .pytorch._callback import NOT_CALLED, Callback, overridden

# The hooks whose arguments after `trainer, pl_module` are more than none.
_BATCH_START = ("on_train_batch_start", "on_validation_batch_start", "on_test_batch_start", "on_predict_batch_start")
_BATCH_END = ("on_train_batch_end", "on_validation_batch_end", "on_test_batch_end", "on_predict_batch_end")
_OPTIMIZER = ("on_before_zero_grad", "on_before_optimizer_step")
# Called by lthost's automatic optimization only (its manual steps' backward and step call none).
# (Lightning's manual optimization calls these three from `manual_backward` and the step.)
_AUTOMATIC_ONLY = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def _of_run():
    """The run's callbacks: the block's trainer's (Lightning's check of their state keys),
    then the module's `configure_callbacks`, each replacing the trainer's callbacks of the
    first of their types it is a subclass of (Lightning's `_attach_model_callbacks`)."""
    done = _block_run.DONE[0]
    given = list(done.callbacks) if done is not None else []
    seen = set()
    for cb in given:
        if type(cb).state_dict is Callback.state_dict:
            continue
        if cb.state_key in seen:
            name = type(cb).__name__
            raise RuntimeError(f"Found more than one stateful callback of type `{name}`. In the current configuration, "
                               f"this callback does not support being saved alongside other instances of the same type. "
                               f"Please consult the documentation of `{name}` regarding valid settings for the callback "
                               f"state to be checkpointable. HINT: The `callback.state_key` must be unique among all "
                               f"callbacks in the Trainer.")
        seen.add(cb.state_key)
    m = _c._module()
    if type(m).configure_callbacks is not _core.LightningModule.configure_callbacks:
        own = m.configure_callbacks()
        own = [own] if isinstance(own, Callback) else list(own or ())
        for cb in own:
            _block_run.check_callback(cb, "configure_callbacks")
        trainer_types = list(dict.fromkeys(type(cb) for cb in given if type(cb) is not Callback))
        replaced = set()
        for model_type in dict.fromkeys(type(cb) for cb in own):
            hit = next((t for t in trainer_types if issubclass(model_type, t)), None)
            if hit is not None:
                replaced.add(hit)
        given = [cb for cb in given if type(cb) not in replaced] + own
    return given


# ---- callback state as JSON (the host keeps it in the checkpoint's header) ----
_TAG = "__lthost__"


def _encoded(v, where):
    """`v` as JSON the host reads: non-finite floats and tensors tagged, tuples as lists."""
    if isinstance(v, float) and not math.isfinite(v):
        return {_TAG: "float", "value": repr(v)}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, torch.Tensor):
        return {_TAG: "tensor", "dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape),
                "values": _encoded(v.detach().cpu().tolist(), where)}
    if isinstance(v, (list, tuple)):
        return [_encoded(e, where) for e in v]
    if isinstance(v, dict):
        return {str(k): _encoded(e, where) for k, e in v.items()}
    raise TypeError(f"{where}: a {type(v).__name__} cannot be kept in a checkpoint by lthost (numbers, strings, "
                    f"tensors, lists and dicts can)")


def _decoded(v):
    if isinstance(v, list):
        return [_decoded(e) for e in v]
    if not isinstance(v, dict):
        return v
    if v.get(_TAG) == "float":
        return float(v["value"])
    if v.get(_TAG) == "tensor":
        return torch.tensor(_decoded(v["values"]), dtype=getattr(torch, v["dtype"])).reshape(v["shape"])
    return {k: _decoded(e) for k, e in v.items()}


def _arguments(name, split, batch_idx):
    """What hook `name` is passed after `trainer, pl_module`."""
    m = _c._module()
    if name in ("setup", "teardown"):
        return (_c._STAGES[_c._trainer.current_stage()],)
    if name in _BATCH_START or name in _BATCH_END:
        dl = None if split == "train" else _c._trainer.dataloader_idx()
        args = (_c._batch(_c._trainer.current_batch(), split), batch_idx, *(() if dl is None else (dl,)))
        return args if name in _BATCH_START else (_c._outputs(m, split), *args)
    if name in _OPTIMIZER:
        opts = m._lt_optimizers
        return (opts[0] if opts else None,)
    if name == "on_before_backward":
        return (_c._backward_loss(m),)
    return ()


# Per callback of the run, the hooks it overrides.
_HOOKS = []


class FileCallbacks(_exports.FileCallbacks):
    def callbacks(self):
        try:
            cbs = _of_run()
            out = []
            manual = not _c._module().automatic_optimization
            for cb in cbs:
                hooks = overridden(cb)
                refused = [h for h in hooks if h in NOT_CALLED or (manual and h in _AUTOMATIC_ONLY)]
                if refused:
                    why = " in manual optimization" if refused[0] in _AUTOMATIC_ONLY else ""
                    raise NotImplementedError(f"{type(cb).__name__}.{refused[0]}: lthost does not call this Callback "
                                              f"hook{why} yet")
                out.append(_fc.CallbackInfo(state_key=str(cb.state_key), hooks=hooks))
        except Exception as e:  # noqa: BLE001  (a user's configure_callbacks may raise anything)
            raise Err(_c.describe(e))
        _core._LIVE["callbacks"] = cbs
        _HOOKS[:] = [set(info.hooks) for info in out]
        return out

    def on_hook(self, hook, stage, batch_idx):
        split = next((s for k, s in _c._HOOK_SPLITS if k in hook), None)
        try:
            m = _c._module()
            _core._WHERE.update(split=split, in_step="batch" in hook or hook in _OPTIMIZER
                                or hook in ("on_before_backward", "on_after_backward"))
            args = None
            for cb, hooks in zip(_core._LIVE.get("callbacks", ()), _HOOKS):
                if hook in hooks:
                    args = _arguments(hook, split, batch_idx) if args is None else args
                    getattr(cb, hook)(_core._TRAINER, m, *args)
        except Err:
            raise
        except Exception as e:  # noqa: BLE001  (any uncaught exception of the user's code)
            raise Err(_c.describe(e))

    def save_state(self):
        out = []
        try:
            for cb in _core._LIVE.get("callbacks", ()):
                state = cb.state_dict()
                if state:
                    where = f"{type(cb).__name__}.state_dict()"
                    out.append((str(cb.state_key), json.dumps(_encoded(state, where), allow_nan=False)))
        except Exception as e:  # noqa: BLE001  (state_dict may raise, or hold what JSON cannot)
            raise Err(f"a callback's state_dict: {_c.describe(e)}")
        return out

    def load_state(self, state_key, state):
        for cb in _core._LIVE.get("callbacks", ()):
            if str(cb.state_key) == state_key:
                try:
                    cb.load_state_dict(_decoded(json.loads(state)))
                except Exception as e:  # noqa: BLE001
                    raise Err(f"{type(cb).__name__}.load_state_dict: {_c.describe(e)}")
                return
