"""A Lightning file's `if __name__ == "__main__":` block, read at `lthost build` (the block never
runs in a plugin): what it gives Lightning — `seed_everything(n)`, the `Trainer(...)` arguments
(its callbacks, logger and strategy among them), the arguments the LightningModule and the
LightningDataModule are made with, `LightningCLI(..., seed_everything_default=,
trainer_defaults=)` — in LightningCLI's config layout, so that `lthost fit model.wasm` trains as
`python model.py` does. lthost build checks each item and keeps them in the plugin's manifest;
the run's config, `--set` and flags go over them.

Values are read, never run: constants, lists, tuples, dicts, arithmetic on numbers, names bound
to those (at the top of the file or earlier in the block), argparse defaults (`args.epochs` of a
`parser.add_argument("--epochs", default=5)`), the built-in callbacks', loggers' and
strategies' constructors, `timedelta(...)`, and calls of the file's own functions (`main()`,
`train(args)`). Anything else is a note naming its line, and the run's settings decide it."""

import ast
import inspect
import math
import os

from . import _script

# Positional parameters of Lightning 2.6.6's classes (tests/reference/lightning_files_reference.py
# checks these against Lightning's signatures).
POSITIONAL = {
    "CSVLogger": ["save_dir", "name", "version", "prefix", "flush_logs_every_n_steps"],
    "TensorBoardLogger": ["save_dir", "name", "version", "log_graph", "default_hp_metric", "prefix", "sub_dir"],
    "MLFlowLogger": ["experiment_name", "run_name", "tracking_uri", "tags", "save_dir", "log_model", "prefix", "artifact_location"],
    "ModelCheckpoint": ["dirpath", "filename", "monitor", "verbose", "save_last", "save_top_k", "save_on_exception", "save_weights_only"],
    "EarlyStopping": ["monitor", "min_delta", "patience", "verbose", "mode", "strict", "check_finite", "stopping_threshold"],
    "LearningRateMonitor": ["logging_interval", "log_momentum", "log_weight_decay"],
    "DeviceStatsMonitor": ["cpu_stats"],
    "GradientAccumulationScheduler": ["scheduling"],
    "BatchSizeFinder": ["mode", "steps_per_trial", "init_val", "max_trials", "batch_arg_name", "margin", "max_val"],
    "LearningRateFinder": ["min_lr", "max_lr", "num_training_steps", "mode", "early_stop_threshold", "update_attr", "attr_name"],
    "OnExceptionCheckpoint": ["dirpath", "filename"],
    "TQDMProgressBar": ["refresh_rate", "process_position", "leave"],
    "RichProgressBar": ["refresh_rate", "leave", "theme", "console_kwargs"],
    "ModelSummary": ["max_depth"],
    "RichModelSummary": ["max_depth"],
    "DDPStrategy": [],
    "timedelta": ["days", "seconds", "microseconds", "milliseconds", "minutes", "hours", "weeks"],
}
CLI_POSITIONAL = ["model_class", "datamodule_class", "save_config_callback", "save_config_kwargs", "trainer_class",
                  "trainer_defaults", "seed_everything_default"]
MAX_DEPTH = 4  # calls of the file's own functions followed, at most
# Where Lightning 2.6.6's trainer calls take DataLoaders: keyword and position.
LOADERS = {
    "fit": {"train_dataloaders": 1, "val_dataloaders": 2},
    "validate": {"dataloaders": 1},
    "test": {"dataloaders": 1},
    "predict": {"dataloaders": 1},
}


class Unknown:
    """A value the block computes at run time: why it is not read."""

    def __init__(self, why):
        self.why = why


class ParsedArgs:
    """What `parser.parse_args()` returns: its attributes are the arguments' defaults."""


class OwnCallback(Unknown):
    """A callback of the file's own (a `Callback` subclass that is not one of Lightning's
    built-ins): made only by running the block, and run in the plugin."""

    def __init__(self, cls, node):
        super().__init__(f"{cls.__name__}(...) is the file's own callback")
        self.cls = cls
        self.line = node.lineno


def _own_callback_class(obj):
    """Whether `obj` is a subclass of Lightning's Callback (the SDK's in a plugin, Lightning's
    own where the reader is checked) that is not one of Lightning's built-ins: its instances
    run in the plugin."""
    if not inspect.isclass(obj) or obj.__dict__.get("_lt_builtin", False) or _is_builtin(obj):
        return False
    return any(c.__name__ == "Callback" and c.__module__.split(".")[0] in ("lightning", "pytorch_lightning")
               for c in obj.__mro__[1:])


def _is_builtin(cls):
    """One of Lightning's own callbacks (the SDK's stand-in, or Lightning's class itself)."""
    return cls.__dict__.get("_lt_builtin", False) or (cls.__name__ in POSITIONAL and cls.__module__.startswith("lightning"))


def _builtin_base(cls):
    """The Lightning built-in callback `cls` subclasses (None: none)."""
    return next((c for c in cls.__mro__[1:] if _is_builtin(c)), None)


class Made:
    """An object the block makes (the module, the data module, a trainer): its items, and
    whether a `.fit(...)` used it."""

    def __init__(self, what, node):
        self.what = what
        self.node = node
        self.items = []
        self.fitted = False
        self.unread = []  # the notes of its arguments not read
        self.needs_run = False
        self.callbacks = []  # a trainer's own callbacks: OwnCallback
        self.callbacks_given = None  # a trainer's `callbacks` argument, when not all of it is read: its node


def _first_unknown(v):
    """The first part of `v` not known before the file runs (None: all of it is)."""
    if isinstance(v, (Unknown, ParsedArgs, Made)):
        return v
    for part in v.values() if isinstance(v, dict) else v if isinstance(v, list) else ():
        bad = _first_unknown(part)
        if bad is not None:
            return bad
    return None


def _number(v, node):
    """A finite real (an int within 64 bits), else Unknown: what JSON and TOML carry."""
    if isinstance(v, float) and math.isfinite(v):
        return v
    if isinstance(v, int) and -2 ** 63 <= v < 2 ** 64:
        return v
    return Unknown(f"`{ast.unparse(node)}` is not a number a config holds")


def _dotted(node):
    """`a.b.C` as "a.b.C", or None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class Reader:
    def __init__(self, module, model_cls, data_cls):
        self.module = module
        self.model_cls = model_cls
        self.data_cls = data_cls
        self.file = os.path.basename(getattr(module, "__file__", None) or "model.py")
        self.items = []  # {"key", "value", "line"}
        self.notes = []  # {"line", "text"}
        self.arg_defaults = {}
        self.funcs = {}
        self.depth = 0
        self.objects = []  # every Made, in order
        self.feeds = []  # trainer calls handed DataLoaders: {"call", "line"}
        self.runs = False  # whether the plugin runs the block (the model is made by it)
        self.data_first = False  # whether it makes the data module before the module
        self.calls = set()  # the trainer calls it makes (fit, validate, test, predict)
        self.callbacks = []  # the chosen trainer's own callbacks: {"name", "line"}

    # ---- the walk ------------------------------------------------------------------------

    def read(self, tree):
        env = {}
        mains = []
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef):
                self.funcs[stmt.name] = stmt
            elif isinstance(stmt, ast.If) and _script.is_main_test(stmt.test):
                mains.append(stmt)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                self.assign(stmt, env, calls=False)
        for m in mains:
            self.block(m.body, env)
        # One trainer, one module and one data module: the ones a `.fit(...)` used, else the
        # first made; the others are named.
        made_of = {what: [m for m in self.objects if m.what == what] for what in ("model", "data", "trainer")}
        chosen_of = {what: next((m for m in made if m.fitted), made[0]) for what, made in made_of.items() if made}
        model, data = chosen_of.get("model"), chosen_of.get("data")
        # Python makes the data module first (its draws in `__init__` before the module's):
        # only running the block keeps that order.
        self.data_first = model is not None and data is not None and self.objects.index(data) < self.objects.index(model)
        if self.data_first:
            self.note(data.node, f"the LightningDataModule is made before the LightningModule (line {model.node.lineno}): "
                                 f"the plugin runs this block when a run starts, so that their random draws come in "
                                 f"this order")
        self.own_callbacks(chosen_of.get("trainer"))
        for what, chosen in chosen_of.items():
            made = made_of[what]
            self.items.extend(chosen.items)
            if what == "model":
                self.runs = bool(self.feeds) or chosen.needs_run or self.data_first or bool(self.callbacks)
            if what in ("model", "data") and self.runs:
                for n in chosen.unread:
                    n["text"] = n["text"].replace("the run's settings decide it", "the block makes it when a run starts")
            for other in made:
                if other is not chosen:
                    self.note(other.node, f"another {self._kinds[what]}, not read: lthost takes the one "
                                          f"{'fitted' if chosen.fitted else 'made first'} (line {chosen.node.lineno})")

    def own_callbacks(self, trainer):
        """The chosen trainer's own callbacks (or, when none is read among its `callbacks`, the
        callback classes the file has, which they may hold: `cbs.append(Printer())`): the plugin
        runs the block for them."""
        if trainer is None:
            return
        for cb in trainer.callbacks:
            self.callbacks.append({"name": cb.cls.__name__, "line": cb.line})
            base = _builtin_base(cb.cls)
            if base is not None:
                self.note(trainer.node, f"{cb.cls.__name__} subclasses Lightning's {base.__name__}: lthost runs its own "
                                        f"{base.__name__}, not a subclass's overrides (a run refuses it)")
        if trainer.callbacks_given is not None and not trainer.callbacks:
            ours = sorted({c.__name__ for c in vars(self.module).values() if _own_callback_class(c)})
            if ours:
                self.callbacks.append({"name": ", ".join(ours), "line": getattr(trainer.callbacks_given, "lineno", 0)})
        if self.callbacks:
            names = ", ".join(c["name"] for c in self.callbacks)
            self.note(trainer.node, f"the file's own callbacks ({names}) run in the plugin: it runs this block when a "
                                    f"run starts, for them")

    _kinds = {"model": "LightningModule", "data": "LightningDataModule", "trainer": "Trainer"}

    def note(self, node, text):
        self.notes.append({"line": getattr(node, "lineno", 0), "text": text})

    def block(self, stmts, env):
        for stmt in stmts:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                self.assign(stmt, env, calls=True)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                self.call(stmt.value, env)
            elif isinstance(stmt, ast.With):
                self.block(stmt.body, env)
            elif isinstance(stmt, ast.If) and not isinstance(test := self.value(stmt.test, env), Unknown):
                self.block(stmt.body if test else stmt.orelse, env)
            else:
                # Not followed (a loop, an `if` known only when the file runs, a `try`, `x += 1`):
                # what it binds is not known here.
                if self._makes_a_trainer(stmt):
                    where = f"under `if {ast.unparse(stmt.test)}`" if isinstance(stmt, ast.If) else f"in a `{type(stmt).__name__.lower()}` statement"
                    self.note(stmt, f"a Trainer made {where} is not read (known only when the file runs)")
                for n in ast.walk(stmt):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                        env[n.id] = Unknown(f"`{n.id}` is set at line {stmt.lineno} in a way read only when the file runs")

    def _makes_a_trainer(self, node):
        return any(isinstance(n, ast.Call) and (_dotted(n.func) or "").rsplit(".", 1)[-1] in ("Trainer", "LightningCLI")
                   for n in ast.walk(node))

    def assign(self, stmt, env, calls):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if stmt.value is None:
            return
        if calls and isinstance(stmt.value, ast.Call):
            v = self.call(stmt.value, env)
        else:
            v = self.value(stmt.value, env)
        for t in targets:
            if isinstance(t, ast.Name):
                env[t.id] = v
            else:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                        env[n.id] = Unknown(f"`{n.id}` is unpacked at line {stmt.lineno}")

    # ---- calls ---------------------------------------------------------------------------

    def resolve(self, node, env):
        """The object a callee names in the file's namespace (None when not a plain name)."""
        name = _dotted(node)
        if name is None:
            return None
        head, *rest = name.split(".")
        if head in env:
            return None
        obj = vars(self.module).get(head)
        for part in rest:
            obj = getattr(obj, part, None)
        return obj

    def call(self, node, env):
        name = _dotted(node.func) or ""
        short = name.rsplit(".", 1)[-1]
        obj = self.resolve(node.func, env)
        if obj is not None and obj is self.model_cls:
            return self.made(node, env, obj, "model")
        if obj is not None and obj is self.data_cls:
            return self.made(node, env, obj, "data")
        if short == "Trainer":
            return self.trainer(node, env)
        if short == "seed_everything":
            self.seed(node, env)
            return Unknown("seed_everything's result")
        if short == "LightningCLI":
            return self.cli(node, env)
        if short == "Tuner":
            self.note(node, "Tuner(...): lthost runs the tuner's searches itself, not the file's: `lthost fit --lr-find` "
                            "or `--scale-batch-size` (settings in the run config's [lr_find] / [scale_batch_size])")
            return Unknown("a Tuner")
        if short == "add_argument":
            self.argument(node, env)
            return Unknown("add_argument's result")
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("fit", "validate", "test", "predict"):
            self.fitted(node, env)
            return Unknown(f"{node.func.attr}'s result")
        if short == "parse_args" or short == "parse_known_args":
            return ParsedArgs() if short == "parse_args" else Unknown("parse_known_args's result")
        if isinstance(node.func, ast.Name) and node.func.id in self.funcs and node.func.id not in env:
            return self.inline(self.funcs[node.func.id], node, env)
        return self.value(node, env)

    def fitted(self, node, env):
        """`trainer.fit(model, datamodule=data)`: those are the objects lthost runs. A call
        handed DataLoaders (`trainer.fit(model, train_loader)`) is noted in `feeds`: only
        running the block makes them (lightning/_block_run.py)."""
        name = node.func.attr
        receiver = node.func.value
        if isinstance(receiver, ast.Call):  # `L.Trainer(max_epochs=3).fit(model, loader)`
            trainer = self.call(receiver, env)
        else:
            trainer = self.value(receiver, env) if isinstance(receiver, ast.Name) else None
        given = {}
        for a in list(node.args) + [k.value for k in node.keywords]:
            if isinstance(a, ast.Call) and name == "fit":  # `trainer.fit(Model(...))`
                given[a] = self.call(a, env)
            elif isinstance(a, ast.Call):
                obj = self.resolve(a.func, env)
                given[a] = Made("data", a) if obj is not None and obj is self.data_cls else Unknown("a call")
            elif isinstance(a, (ast.Name, ast.Constant)):
                given[a] = self.value(a, env)
        # Another object's `.fit` (a scikit-learn scaler's) or a trainer not read hands over nothing.
        is_trainer = isinstance(trainer, Made) and trainer.what == "trainer"
        if is_trainer:
            self.calls.add(name)
        places = LOADERS[name] if is_trainer else {}
        loaders = [a for i, a in enumerate(node.args) if i in places.values()]
        loaders += [k.value for k in node.keywords if k.arg in places]
        for a in loaders:
            v = given.get(a, Unknown("not read"))
            if v is None:  # `None`, or a name bound to it
                continue
            if not (isinstance(v, Made) and v.what == "data"):
                self.feeds.append({"call": name, "line": node.lineno})
                self.note(node, f"trainer.{name}(...) is handed DataLoaders: the plugin runs this block when a run "
                                f"starts, up to this call, for them")
                break
        if name != "fit":
            return
        for m in [trainer, *given.values()]:
            if isinstance(m, Made) and not any(o.fitted and o.what == m.what for o in self.objects):
                m.fitted = True

    def arguments(self, node, env, positional=None):
        """A call's arguments by name ({name: value}); positional ones named by `positional`."""
        out = {}
        for i, a in enumerate(node.args):
            if isinstance(a, ast.Starred) or positional is None or i >= len(positional):
                self.note(node, f"{ast.unparse(node.func)}(...): argument {i + 1} is not read (give it by name)")
                continue
            out[positional[i]] = (self.value(a, env), a)
        for kw in node.keywords:
            if kw.arg is None:
                spread = self.value(kw.value, env)
                if isinstance(spread, dict):
                    out.update({k: (v, kw.value) for k, v in spread.items()})
                else:
                    self.note(node, f"{ast.unparse(node.func)}(**{ast.unparse(kw.value)}): not read ({self.why(spread)})")
                continue
            out[kw.arg] = (self.value(kw.value, env), kw.value)
        return out

    def why(self, v):
        return v.why if isinstance(v, Unknown) else "not a constant"

    def known(self, key, given, line_of, into=None):
        """(value, node) → an item (of `into`, a Made's, else the block's), or a note when
        the value is not known."""
        v, at = given
        bad = _first_unknown(v)
        if bad is not None:
            self.note(at, f"{key} = {ast.unparse(at)}: not read ({self.why(bad)}); the run's settings decide it")
            if into is not None:
                into.unread.append(self.notes[-1])
            return
        (self.items if into is None else into.items).append({"key": key, "value": v, "line": getattr(at, "lineno", line_of)})

    def made(self, node, env, cls, what):
        try:
            params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
        except (TypeError, ValueError):
            params = []
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        made = self.make(what, node)
        for k, given in self.arguments(node, env, names).items():
            self.known(f"{what}.{k}", given, node.lineno, made)
        read = {i["key"] for i in made.items}
        # An argument it needs that is not read: the block makes it (lightning/_block_run.py).
        made.needs_run = any(p.default is p.empty and f"{what}.{p.name}" not in read for p in params
                             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        return made

    def make(self, what, node):
        m = Made(what, node)
        self.objects.append(m)
        return m

    def trainer(self, node, env):
        made = self.make("trainer", node)
        for k, given in self.arguments(node, env, []).items():
            if k == "callbacks":
                self.trainer_callbacks(given, node, made)
                continue
            if k == "logger" and isinstance(given[0], list):
                for one in given[0]:
                    self.known(f"trainer.{k}", (one, given[1]), node.lineno, made)
                continue
            self.known(f"trainer.{k}", given, node.lineno, made)
        return made

    def trainer_callbacks(self, given, node, made):
        """A trainer's `callbacks`: the built-ins' settings are read; the file's own callbacks
        are made by running the block."""
        value, at = given
        items = value if isinstance(value, list) else [value]
        if not isinstance(at, (ast.List, ast.Tuple)) or any(isinstance(one, Unknown) and not isinstance(one, OwnCallback)
                                                            for one in items):
            made.callbacks_given = at  # a name the block may add to (`cbs.append(Printer())`), a call, ...
        for one in items:
            if isinstance(one, OwnCallback):
                made.callbacks.append(one)
                continue
            self.known("trainer.callbacks", (one, at), node.lineno, made)

    def seed(self, node, env):
        args = self.arguments(node, env, ["seed", "workers", "verbose"])
        v, at = args.get("seed", (None, node))
        self.known("seed_everything", (True if v is None else v, at), node.lineno)

    def cli(self, node, env):
        args = self.arguments(node, env, CLI_POSITIONAL)
        seed = args.get("seed_everything_default", (True, node))
        self.known("seed_everything", seed, node.lineno)
        defaults, at = args.get("trainer_defaults", ({}, node))
        made = self.make("trainer", node)
        made.fitted = True  # LightningCLI runs its subcommand on this trainer
        if isinstance(defaults, dict):
            for k, v in defaults.items():
                if k in ("callbacks", "logger") and isinstance(v, list):
                    for one in v:
                        self.known(f"trainer.{k}", (one, at), node.lineno, made)
                    continue
                self.known(f"trainer.{k}", (v, at), node.lineno, made)
        else:
            self.note(at, f"LightningCLI's trainer_defaults: not read ({self.why(defaults)})")
        self.note(node, "LightningCLI's command line is lthost's: `lthost fit model.wasm --config config.yaml`")
        return made

    def argument(self, node, env):
        flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        dest = self.value(kw["dest"], env) if "dest" in kw else None
        if not isinstance(dest, str):
            longs = [f for f in flags if f.startswith("--")] or [f for f in flags if f.startswith("-")] or flags
            if not longs:
                return
            dest = longs[0].lstrip("-").replace("-", "_")
        if "default" in kw:
            default = self.value(kw["default"], env)
            kind = _dotted(kw["type"]) if "type" in kw else None
            if isinstance(default, str) and kind in ("int", "float"):
                try:  # argparse passes a string default through its type
                    default = int(default) if kind == "int" else float(default)
                except ValueError:
                    default = Unknown(f"--{dest}'s default {default!r} is not a {kind}")
            self.arg_defaults[dest] = default
        elif kw.get("action") is not None and self.value(kw["action"], env) in ("store_true", "store_false"):
            self.arg_defaults[dest] = self.value(kw["action"], env) == "store_false"
        else:
            self.arg_defaults[dest] = None

    def inline(self, fn, node, env):
        if self.depth >= MAX_DEPTH:
            self.note(node, f"{fn.name}(): calls nested deeper than {MAX_DEPTH} are not followed")
            return Unknown(f"{fn.name}()'s result")
        inner = {k: v for k, v in env.items() if not isinstance(v, Made)}
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        defaults = fn.args.defaults
        for name, d in zip(params[len(params) - len(defaults):], defaults):
            inner[name] = self.value(d, env)
        for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults):
            if d is not None:
                inner[a.arg] = self.value(d, env)
        for name, a in zip(params, node.args):
            inner[name] = self.call(a, env) if isinstance(a, ast.Call) else self.value(a, env)
        for k in node.keywords:
            if k.arg:
                inner[k.arg] = self.call(k.value, env) if isinstance(k.value, ast.Call) else self.value(k.value, env)
        self.depth += 1
        try:
            self.block(fn.body, inner)
        finally:
            self.depth -= 1
        return Unknown(f"{fn.name}()'s result")

    # ---- values --------------------------------------------------------------------------

    def value(self, node, env):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return _number(node.value, node)
            if isinstance(node.value, (bool, str)) or node.value is None:
                return node.value
            return Unknown(f"{type(node.value).__name__} constant")
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(e, env) for e in node.elts]
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:  # {**other}
                    spread = self.value(v, env)
                    if not isinstance(spread, dict):
                        return Unknown(f"`**{ast.unparse(v)}` is known only when the file runs")
                    out.update(spread)
                    continue
                key = self.value(k, env)
                if not isinstance(key, (str, int)):
                    return Unknown("a dict with keys not known")
                out[str(key)] = self.value(v, env)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            v = self.value(node.operand, env)
            if isinstance(node.op, ast.Not):
                return Unknown("a negation of an unknown") if isinstance(v, Unknown) else (not v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return -v if isinstance(node.op, ast.USub) else v
            return Unknown(ast.unparse(node))
        if isinstance(node, ast.BinOp):
            a, b = self.value(node.left, env), self.value(node.right, env)
            ops = {ast.Add: lambda x, y: x + y, ast.Sub: lambda x, y: x - y, ast.Mult: lambda x, y: x * y,
                   ast.Div: lambda x, y: x / y, ast.FloorDiv: lambda x, y: x // y, ast.Pow: lambda x, y: x ** y}
            f = ops.get(type(node.op))
            numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
            if f is None or not numbers or (isinstance(node.op, ast.Pow) and (abs(b) > 64 or abs(a) > 2 ** 64)):
                return Unknown(ast.unparse(node))
            try:
                return _number(f(a, b), node)
            except (ArithmeticError, OverflowError, ValueError):
                return Unknown(ast.unparse(node))
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            return Unknown(f"`{node.id}` is known only when the file runs")
        if isinstance(node, ast.Attribute):
            base = self.value(node.value, env) if isinstance(node.value, ast.Name) and node.value.id in env else None
            if isinstance(base, ParsedArgs):
                if node.attr in self.arg_defaults:
                    return self.arg_defaults[node.attr]
                return Unknown(f"no add_argument gives `{node.attr}` a default")
            if isinstance(base, dict) and node.attr in base:
                return base[node.attr]
            return Unknown(f"`{ast.unparse(node)}` is known only when the file runs")
        if isinstance(node, ast.Call):
            short = (_dotted(node.func) or "").rsplit(".", 1)[-1]
            if short in ("dict",) and not node.args:
                return {k: v for k, (v, _) in self.arguments(node, env, []).items()}
            if short in POSITIONAL:
                args = self.arguments(node, env, POSITIONAL[short])
                bad = [k for k, (v, _) in args.items() if _first_unknown(v) is not None]
                if bad:
                    return Unknown(f"{short}'s `{bad[0]}` is known only when the file runs")
                init = {k: v for k, (v, _) in args.items()}
                if short == "timedelta":
                    return init
                return {"class_path": short, "init_args": init}
            cls = self.resolve(node.func, env)
            if _own_callback_class(cls):
                return OwnCallback(cls, node)
            return Unknown(f"`{ast.unparse(node.func)}(...)` runs only when the file runs")
        return Unknown(f"`{ast.unparse(node)}` is known only when the file runs")


def read(module, model_cls, data_cls):
    """{"items": [{"key", "value", "line"}], "notes": [{"line", "text"}], "file", "feeds",
    "makes_model", "calls", "data_first"}: what the file's `__main__` block gives Lightning
    (nothing when it has none); `feeds`: its trainer calls handed DataLoaders; `makes_model`:
    it makes the module; `calls`: the trainer calls it makes; `data_first`: it makes the data
    module before the module."""
    r = Reader(module, model_cls, data_cls)
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return {"items": [], "notes": [], "file": r.file, "feeds": [], "makes_model": False, "calls": [], "data_first": False,
                "callbacks": []}
    try:
        tree = ast.parse(source)
        script = _script.as_main_block(tree)
        if script:
            lines = ", ".join(f"{a}–{b}" if b > a else str(a) for a, b in script)
            r.notes.append({"line": script[0][0], "text": f"the training code at the file's top level (lines {lines}) is "
                                                          f"read as its `__main__` block, as `python model.py` runs it"})
        r.read(tree)
    except Exception as e:  # a block this reader does not follow never fails the build
        return {"items": [], "notes": [{"line": 0, "text": f"the __main__ block is not read ({type(e).__name__}: {e})"}],
                "file": r.file, "feeds": [], "makes_model": False, "calls": [], "data_first": False, "callbacks": []}
    return {"items": r.items, "notes": r.notes, "file": r.file, "feeds": r.feeds,
            "makes_model": any(m.what == "model" for m in r.objects), "calls": sorted(r.calls),
            "data_first": r.data_first, "callbacks": r.callbacks}


def compiled(module):
    """The file's `__main__` blocks as one code object (their lines the file's), for
    lightning/_block_run.py to run in the plugin."""
    tree = ast.parse(inspect.getsource(module))
    _script.as_main_block(tree)
    body = [stmt for top in tree.body if isinstance(top, ast.If) and _script.is_main_test(top.test) for stmt in top.body]
    return compile(ast.Module(body=body, type_ignores=[]), getattr(module, "__file__", None) or "model.py", "exec")
