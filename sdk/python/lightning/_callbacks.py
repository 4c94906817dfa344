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


def _of_run():
    """The run's callbacks: the block's trainer's, then the module's `configure_callbacks`
    (replacing those of the same type), as Lightning attaches them."""
    done = _block_run.DONE[0]
    given = list(done.callbacks) if done is not None else []
    m = _c._module()
    if type(m).configure_callbacks is not _core.LightningModule.configure_callbacks:
        own = m.configure_callbacks()
        own = [own] if isinstance(own, Callback) else list(own or ())
        for cb in own:
            if not isinstance(cb, Callback):
                raise TypeError(f"configure_callbacks returned a {type(cb).__name__}, not a Callback")
        replaced = {type(cb) for cb in own}
        given = [cb for cb in given if type(cb) not in replaced] + own
    return given


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
            for cb in cbs:
                hooks = overridden(cb)
                refused = [h for h in hooks if h in NOT_CALLED]
                if refused:
                    raise NotImplementedError(f"{type(cb).__name__}.{refused[0]}: lthost does not call this Callback "
                                              f"hook yet")
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
                    out.append((str(cb.state_key), json.dumps(state)))
        except Exception as e:  # noqa: BLE001  (state_dict may raise, or hold what JSON cannot)
            raise Err(f"a callback's state_dict: {_c.describe(e)}")
        return out

    def load_state(self, state_key, state):
        for cb in _core._LIVE.get("callbacks", ()):
            if str(cb.state_key) == state_key:
                try:
                    cb.load_state_dict(json.loads(state))
                except Exception as e:  # noqa: BLE001
                    raise Err(f"{type(cb).__name__}.load_state_dict: {_c.describe(e)}")
                return
