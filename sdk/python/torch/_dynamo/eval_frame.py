"""torch.compile's module wrapper. lthost runs the wrapped module as written (every op in the
host, eagerly), but keeps torch's structure: the module is the wrapper's `_orig_mod` child, so
names, state_dict keys and checkpoints read `<name>._orig_mod.<param>` exactly as torch writes
them, and attribute reads and writes the wrapper does not own go to the module."""

from ..nn.module import Module

# What the wrapper keeps for itself (torch's `_opt_mod_attributes`, less what is about
# dynamo's frames); every other attribute is the wrapped module's.
_OWN = {"_orig_mod", "dynamo_ctx", "forward", "_forward", "__dict__", "_super_module_initialized"}


class OptimizedModule(Module):
    """torch._dynamo.eval_frame.OptimizedModule: `torch.compile(module)`."""

    def __init__(self, mod, dynamo_ctx=None):
        object.__setattr__(self, "_orig_mod", mod)
        object.__setattr__(self, "_super_module_initialized", False)
        super().__init__()
        object.__setattr__(self, "_super_module_initialized", True)
        self.__dict__.pop("_orig_mod")
        self._modules["_orig_mod"] = mod
        object.__setattr__(self, "dynamo_ctx", dynamo_ctx)
        # Calling the wrapper calls the module (its own hooks run there, as in torch).
        object.__setattr__(self, "forward", mod.__call__)

    @property
    def training(self):
        return self._orig_mod.training

    @training.setter
    def training(self, value):
        if self.__dict__.get("_super_module_initialized"):
            self._orig_mod.training = value

    def __len__(self):
        mod = self._orig_mod
        if hasattr(type(mod), "__len__"):
            return len(mod)
        raise TypeError(f"{type(mod).__name__} does not support len()")

    def __getattr__(self, name):
        if name == "_orig_mod":
            return self.__dict__["_modules"]["_orig_mod"]
        return getattr(self._orig_mod, name)

    def __setattr__(self, name, value):
        if hasattr(type(self), name) or name in _OWN:
            return super().__setattr__(name, value)
        return setattr(self._orig_mod, name, value)

    def __delattr__(self, name):
        if hasattr(type(self), name) or name in _OWN:
            return super().__delattr__(name)
        return delattr(self._orig_mod, name)

    def __dir__(self):
        own = self._orig_mod.__dir__()
        return own + [a for a in super().__dir__() if a not in own]
