"""Reference run of a Lightning file as its author runs it, `python model.py`: the file's own
`__main__` block in Lightning 2.6.6 (its seed, argparse defaults, Trainer arguments, callbacks
and logger), in an empty working directory. Recorded: the training loss of every step (a
callback added to the file's Trainer, which changes nothing of the run), the epochs run, the
steps, the metrics.csv columns and the checkpoint files, for tests/e2e/main_block.rs to
compare with `lthost fit` of the built file with no settings of its own. Also checks that
lightning/_main_block.py's positional parameters are Lightning's, and that it reads tricky
blocks as far as it can without failing (READS). Run by `make reference`:

    .venv/bin/python tests/reference/main_block_reference.py tests/reference/main_block.json
"""

import ast
import csv
import importlib.util
import inspect
import json
import logging
import os
import runpy
import sys
import tempfile
import types
import warnings
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[2]
FILES = {name: ROOT / "tests" / "plugins" / name / "model.py"
         for name in ("lit-main", "lit-quickstart", "lit-script", "lit-demos", "lit-callbacks")}


def sdk_module(name):
    """The lthost SDK's `lightning/<name>.py` (`_main_block`, `_script`: plain Python, no plugin
    needed), loaded as `lthost_sdk_lightning.<name>`, so that its imports of its neighbours
    (`from . import _script`) find the SDK's and not Lightning's."""
    package = sys.modules.get("lthost_sdk_lightning")
    if package is None:
        package = sys.modules["lthost_sdk_lightning"] = types.ModuleType("lthost_sdk_lightning")
        package.__path__ = [str(ROOT / "sdk" / "python" / "lightning")]
    return importlib.import_module(f"lthost_sdk_lightning.{name}")


class Losses(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def run_as_main(path):
    """Runs `path` as `python path` would, in a fresh directory; what it did."""
    recorder = Losses()
    made = []
    original = L.Trainer.__init__

    def init(self, *args, **kwargs):
        kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [recorder]
        original(self, *args, **kwargs)
        made.append(self)

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        L.Trainer.__init__ = init
        argv = sys.argv
        sys.argv = [str(path)]
        try:
            runpy.run_path(str(path), run_name="__main__")
            trainer = made[-1]
            metrics = Path(trainer.logger.log_dir) / "metrics.csv"
            columns = None
            if metrics.exists():  # a CSVLogger's (Lightning's default logger is TensorBoard's)
                with open(metrics) as f:
                    columns = sorted(next(csv.reader(f)))
            checkpoints = sorted(p.name for p in Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt"))
        finally:
            L.Trainer.__init__ = original
            sys.argv = argv
            os.chdir(cwd)
        stopping = trainer.early_stopping_callback
        return {"losses": recorder.losses, "epochs": trainer.current_epoch, "global_step": trainer.global_step,
                "logger_name": trainer.logger.name, "columns": columns, "checkpoints": checkpoints,
                "stopped_early": stopping is not None and stopping.stopped_epoch > 0,
                "callback_metrics": {k: float(v) for k, v in sorted(trainer.callback_metrics.items())}}


def positional_parameters_are_lightnings():
    mb = sdk_module("_main_block")
    from datetime import timedelta

    from lightning.pytorch import callbacks, loggers, strategies
    from lightning.pytorch.cli import LightningCLI

    for name, params in mb.POSITIONAL.items():
        cls = timedelta if name == "timedelta" else next(getattr(m, name) for m in (callbacks, loggers, strategies) if hasattr(m, name))
        if cls is timedelta:
            continue  # a C type without a signature; its positional order is documented
        sig = [p.name for p in inspect.signature(cls.__init__).parameters.values()
               if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if name == "DDPStrategy":
            continue  # read by name only (its positional ones are objects)
        assert sig[:len(params)] == params, (name, sig, params)
    cli = [p for p in inspect.signature(LightningCLI.__init__).parameters if p != "self"]
    assert cli[:len(mb.CLI_POSITIONAL)] == mb.CLI_POSITIONAL, cli


# Blocks the reader must read as far as it can, and never fail on: (source, items expected, note fragments expected).
READS = {
    "DataLoaders handed to the trainer, a model argument made when the file runs": ("""
import lightning as L
from torch.utils.data import DataLoader
class M(L.LightningModule):
    def __init__(self, net, lr=0.1):
        super().__init__()
if __name__ == "__main__":
    loader = DataLoader([1, 2, 3])
    model = M(object(), lr=0.2)
    trainer = L.Trainer(max_epochs=2)
    trainer.fit(model, None, val_dataloaders=loader)
    trainer.validate(model, datamodule=None)
""", {"model.lr": 0.2, "trainer.max_epochs": 2},
        ["trainer.fit(...) is handed DataLoaders: the plugin runs this block", "model.net = object(): not read",
         "the block makes it when a run starts"]),
    "several trainers and models, values it cannot know": ("""
import lightning as L
class M(L.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
if __name__ == "__main__":
    lr = 0.1
    lr *= 2
    a, b = 1, 2
    first = M(lr=lr)
    fitted = M(lr=0.5)
    tester = L.Trainer(devices=1)
    t = L.Trainer(devices=4, max_epochs=1e200 * 1e200, min_epochs=(-8) ** 0.5, max_steps=10 ** 10 ** 10,
                  val_check_interval=1e999, limit_val_batches=b)
    t.fit(fitted)
    tester.test(first)
    for i in range(2):
        x = i
    L.Trainer(max_epochs=x)
    match lr:
        case _:
            pass
    f = lambda: (y := 3)
""", {"model.lr": 0.5, "trainer.devices": 4},
        ["`lr` is set at line 8", "not a number a config holds", "10 ** 10 ** 10", "`b` is unpacked",
         "another LightningModule, not read: lthost takes the one fitted", "another Trainer"]),
    "argparse defaults through their type": ("""
import argparse
import lightning as L
class M(L.LightningModule):
    def __init__(self, n=1):
        super().__init__()
def main(args, epochs=3):
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=args.frac, **{"log_every_n_steps": 1})
    trainer.fit(M(args.n))
if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default="5")
    p.add_argument("--frac", type=float, default="0.5")
    p.add_argument("--fast", action="store_true")
    main(p.parse_args())
""", {"model.n": 5, "trainer.max_epochs": 3, "trainer.limit_train_batches": 0.5, "trainer.log_every_n_steps": 1}, []),
    "training code at the file's top level, no __main__ block": ("""
import argparse
import lightning as L
from torch.utils.data import DataLoader
HIDDEN = 8
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.2)
class M(L.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.hidden = HIDDEN
args = parser.parse_args()
L.seed_everything(7)
trainer = L.Trainer(max_epochs=2)
trainer.fit(M(lr=args.lr), DataLoader([1, 2, 3]))
""", {"seed_everything": 7, "trainer.max_epochs": 2, "model.lr": 0.2},
        ["the training code at the file's top level (lines 6–7, 12–15) is read as its `__main__` block",
         "trainer.fit(...) is handed DataLoaders"]),
    "the file's own callbacks beside a built-in": ("""
import lightning as L
from lightning.pytorch.callbacks import EarlyStopping
class Printer(L.Callback):
    pass
class M(L.LightningModule):
    pass
if __name__ == "__main__":
    printer = Printer()
    trainer = L.Trainer(max_epochs=2, callbacks=[printer, EarlyStopping("val_loss")])
    trainer.fit(M())
""", {"trainer.max_epochs": 2, "trainer.callbacks": {"class_path": "EarlyStopping", "init_args": {"monitor": "val_loss"}}},
        ["the file's own callbacks (Printer) run in the plugin: it runs this block when a run starts"]),
    "callbacks gathered in a way read only when the file runs": ("""
import lightning as L
class Printer(L.Callback):
    pass
class M(L.LightningModule):
    pass
if __name__ == "__main__":
    cbs = []
    cbs.append(Printer())
    L.Trainer(callbacks=cbs).fit(M())
""", {}, ["the file's own callbacks (Printer) run in the plugin"]),
    "built-in callbacks only, a callback class of the file's own unused; a built-in's subclass": ("""
import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
class Printer(L.Callback):
    pass
class BestOnly(ModelCheckpoint):
    pass
class M(L.LightningModule):
    pass
if __name__ == "__main__":
    L.Trainer(callbacks=[EarlyStopping("val_loss")]).fit(M())
    L.Trainer(callbacks=[BestOnly()]).test(M())
""", {"trainer.callbacks": {"class_path": "EarlyStopping", "init_args": {"monitor": "val_loss"}}},
        ["!the file's own callbacks (Printer)", "another Trainer, not read"]),
    "a built-in's subclass": ("""
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
class BestOnly(ModelCheckpoint):
    pass
class M(L.LightningModule):
    pass
if __name__ == "__main__":
    L.Trainer(callbacks=[BestOnly()]).fit(M())
""", {}, ["BestOnly subclasses Lightning's ModelCheckpoint: lthost runs its own ModelCheckpoint"]),
    "LightningCLI": ("""
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.callbacks import LearningRateMonitor
class M(LightningModule):
    pass
def cli_main():
    LightningCLI(M, seed_everything_default=1234, trainer_defaults={"max_epochs": 2, "callbacks": [LearningRateMonitor("step")]})
if __name__ == "__main__":
    cli_main()
""", {"seed_everything": 1234, "trainer.max_epochs": 2,
      "trainer.callbacks": {"class_path": "LearningRateMonitor", "init_args": {"logging_interval": "step"}}},
        ["LightningCLI's command line is lthost's"]),
}


def the_reader_reads_what_it_can_and_never_fails():
    mb = sdk_module("_main_block")
    script = sdk_module("_script")
    with tempfile.TemporaryDirectory() as d:
        for i, (case, (source, items, notes)) in enumerate(READS.items()):
            path = Path(d) / f"case{i}.py"
            path.write_text(source)
            s = importlib.util.spec_from_file_location(f"case{i}", path)
            module = importlib.util.module_from_spec(s)
            # Imported as lthost build imports a file: its top-level training code held back.
            tree = ast.parse(source)
            script.as_main_block(tree)
            exec(compile(tree, str(path), "exec"), module.__dict__)
            found = mb.read(module, module.M, None)
            json.dumps(found, allow_nan=False)  # what the build writes
            got = {item["key"]: item["value"] for item in found["items"]}
            assert got == items, (case, got)
            text = "\n".join(n["text"] for n in found["notes"])
            for fragment in notes:  # "!...": a note that must not be there
                if fragment.startswith("!"):
                    assert fragment[1:] not in text, (case, fragment, text)
                else:
                    assert fragment in text, (case, fragment, text)


def main(out):
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    positional_parameters_are_lightnings()
    the_reader_reads_what_it_can_and_never_fails()
    results = {name: run_as_main(path) for name, path in FILES.items()}
    Path(out).write_text(json.dumps(results, indent=1))
    for name, r in results.items():
        print(f"{name}: {len(r['losses'])} steps, {r['epochs']} epochs, checkpoints {r['checkpoints']}")


if __name__ == "__main__":
    main(sys.argv[1])
