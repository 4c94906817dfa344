"""Lightning's Callback as users subclass it. A file's callbacks (handed to its Trainer's
`callbacks`, or returned by the module's `configure_callbacks`) run in the plugin, at each
hook before lthost's own callbacks and before the module, with `trainer` (the run's state:
`current_epoch`, `callback_metrics`, `should_stop`, ...) and the module itself
(lightning/_callbacks.py)."""


class Callback:
    """Lightning 2.6's Callback: every hook does nothing until a subclass overrides it."""

    @property
    def state_key(self):
        """The callback's key in a checkpoint's callback states (Lightning's default: the
        class's qualified name)."""
        return self.__class__.__qualname__

    def _generate_state_key(self, **kwargs):
        """Lightning's helper for a state key that tells instances apart by their arguments."""
        return f"{self.__class__.__qualname__}{repr(kwargs)}"

    def setup(self, trainer, pl_module, stage):
        pass

    def teardown(self, trainer, pl_module, stage):
        pass

    def on_fit_start(self, trainer, pl_module):
        pass

    def on_fit_end(self, trainer, pl_module):
        pass

    def on_sanity_check_start(self, trainer, pl_module):
        pass

    def on_sanity_check_end(self, trainer, pl_module):
        pass

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pass

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pass

    def on_train_epoch_start(self, trainer, pl_module):
        pass

    def on_train_epoch_end(self, trainer, pl_module):
        pass

    def on_validation_epoch_start(self, trainer, pl_module):
        pass

    def on_validation_epoch_end(self, trainer, pl_module):
        pass

    def on_test_epoch_start(self, trainer, pl_module):
        pass

    def on_test_epoch_end(self, trainer, pl_module):
        pass

    def on_predict_epoch_start(self, trainer, pl_module):
        pass

    def on_predict_epoch_end(self, trainer, pl_module):
        pass

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        pass

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        pass

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        pass

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        pass

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        pass

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        pass

    def on_train_start(self, trainer, pl_module):
        pass

    def on_train_end(self, trainer, pl_module):
        pass

    def on_validation_start(self, trainer, pl_module):
        pass

    def on_validation_end(self, trainer, pl_module):
        pass

    def on_test_start(self, trainer, pl_module):
        pass

    def on_test_end(self, trainer, pl_module):
        pass

    def on_predict_start(self, trainer, pl_module):
        pass

    def on_predict_end(self, trainer, pl_module):
        pass

    def on_exception(self, trainer, pl_module, exception):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict):
        pass

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        pass

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        pass

    def on_before_backward(self, trainer, pl_module, loss):
        pass

    def on_after_backward(self, trainer, pl_module):
        pass

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        pass

    def on_before_zero_grad(self, trainer, pl_module, optimizer):
        pass


# The hooks lthost does not call on a file's callback yet: overriding one is refused when a
# run starts, rather than silently not run.
NOT_CALLED = ("on_exception", "on_save_checkpoint", "on_load_checkpoint")

# Every hook a callback may override (its arguments after `trainer, pl_module`: the adapter's).
HOOKS = tuple(n for n, v in vars(Callback).items() if callable(v) and (n.startswith("on_") or n in ("setup", "teardown")))


def overridden(cb):
    """The hooks `cb`'s class overrides, in Callback's order."""
    cls = type(cb)
    return [n for n in HOOKS if getattr(cls, n, None) is not getattr(Callback, n)]
