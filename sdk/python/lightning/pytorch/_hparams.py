"""Lightning's HyperparametersMixin for lthost's LightningModule and LightningDataModule:
`save_hyperparameters` collects the `__init__` arguments from the calling frames, as
Lightning's `collect_init_args` does (the most specific class's values last), keeps the
selected ones in `hparams` and a frozen copy in `hparams_initial`, and records whether the
loggers get them (`logger=`). lthost reads `hparams_initial` and that flag after `__init__`:
the loggers get them as Lightning's `_log_hyperparams` merges a module's and a DataModule's."""

import copy
import inspect
import types
from argparse import Namespace

_PRIMITIVE_TYPES = (bool, int, float, str)


class AttributeDict(dict):
    """`self.hparams`: a dict with attribute access (Lightning's AttributeDict)."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e

    def __setattr__(self, k, v):
        self[k] = v


def _init_args(frame):
    """`(self, {name: value})` of an `__init__` frame that uses `super()` (so `__class__` is
    one of its locals), else `(None, {})`: the signature's names with their current values,
    `**kwargs` spread out, self, `*args` and `**kwargs` themselves left out."""
    local_vars = frame.f_locals
    if "__class__" not in local_vars or frame.f_code.co_name != "__init__":
        return None, {}
    params = list(inspect.signature(local_vars["__class__"].__init__).parameters.values())
    self_name = params[0].name if params else None
    var_args = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), None)
    var_kwargs = next((p.name for p in params if p.kind == p.VAR_KEYWORD), None)
    found = {p.name: local_vars[p.name] for p in params if p.name in local_vars}
    if var_kwargs:
        found.update(found.get(var_kwargs, {}))
    excluded = {self_name, var_args, var_kwargs, "__class__", "frame", "frame_args"}
    return local_vars.get(self_name), {k: v for k, v in found.items() if k not in excluded}


def _collect_init_args(frame):
    """The arguments of each `__init__` on the way up from `frame`, the caller's first and the
    most specific class's last; frames before the first `__init__` are skipped."""
    levels, inside = [], False
    while isinstance(frame.f_back, types.FrameType):
        obj, found = _init_args(frame)
        if "__class__" in frame.f_locals and isinstance(obj, HyperparametersMixin):
            levels.append(found)
            inside = True
        elif inside:
            break
        frame = frame.f_back
    return levels


class HyperparametersMixin:
    def save_hyperparameters(self, *args, ignore=None, frame=None, logger=True):
        """Saves the `__init__` arguments (all, the names given, or the one dict or Namespace
        given) in `self.hparams`, minus `ignore`; `logger=False` keeps them from the loggers."""
        self.__dict__["_log_hyperparams"] = logger
        if len(args) == 1 and not args[0]:
            return
        if frame is None:
            frame = inspect.currentframe().f_back
        if not isinstance(frame, types.FrameType):
            raise AttributeError("There is no `frame` available while being required.")
        init_args = {}
        for level in _collect_init_args(frame):
            init_args.update(level)
        if ignore is None:
            ignore = []
        elif isinstance(ignore, str):
            ignore = [ignore]
        elif isinstance(ignore, (list, tuple)):
            ignore = [a for a in ignore if isinstance(a, str)]
        ignore = set(ignore)
        init_args = {k: v for k, v in init_args.items() if k not in ignore}
        if not args:
            hp = init_args
        else:
            non_str = [a for a in args if not isinstance(a, str)]
            hp = non_str[0] if len(non_str) == 1 else {a: init_args[a] for a in args if isinstance(a, str)}
        self._set_hparams(hp)
        # What a base class saved is dropped too (Lightning's `remove_ignored_hparams`).
        for k in ignore:
            self.hparams.pop(k, None)
        self.__dict__["_hparams_initial"] = copy.deepcopy(self.hparams)

    def _set_hparams(self, hp):
        if isinstance(hp, Namespace):
            hp = vars(hp)
        if isinstance(hp, dict):
            hp = AttributeDict(hp)
        elif isinstance(hp, _PRIMITIVE_TYPES):
            raise ValueError(f"Primitives {_PRIMITIVE_TYPES} are not allowed.")
        else:
            raise ValueError(f"Unsupported config type of {type(hp)}.")
        self.hparams.update(hp)

    @property
    def hparams(self):
        """The hyper-parameters saved with `save_hyperparameters` (mutable)."""
        if "_hparams" not in self.__dict__:
            self.__dict__["_hparams"] = AttributeDict()
        return self.__dict__["_hparams"]

    @property
    def hparams_initial(self):
        """The hyper-parameters as `save_hyperparameters` saved them (a copy)."""
        return AttributeDict(copy.deepcopy(self.__dict__.get("_hparams_initial", {})))
