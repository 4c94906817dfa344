"""Reference run of a Lightning file as its author runs it, `python model.py`: the file's own
`__main__` block in Lightning 2.6.6 (its seed, argparse defaults, Trainer arguments, callbacks
and logger), in an empty working directory. Recorded: the training loss of every step (a
callback added to the file's Trainer, which changes nothing of the run), the epochs run, the
steps, the metrics.csv columns and the checkpoint files, for tests/e2e/main_block.rs to
compare with `lthost fit` of the built file with no settings of its own. Also checks that
lightning/_main_block.py's positional parameters are Lightning's. Run by `make reference`:

    .venv/bin/python tests/reference/main_block_reference.py tests/reference/main_block.json
"""

import csv
import importlib.util
import inspect
import json
import logging
import os
import runpy
import sys
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[2]
FILES = {"lit-main": ROOT / "tests" / "plugins" / "lit-main" / "model.py"}


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
            with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
                columns = sorted(next(csv.reader(f)))
            checkpoints = sorted(p.name for p in Path(trainer.checkpoint_callback.dirpath).glob("*.ckpt"))
        finally:
            L.Trainer.__init__ = original
            sys.argv = argv
            os.chdir(cwd)
        return {"losses": recorder.losses, "epochs": trainer.current_epoch, "global_step": trainer.global_step,
                "logger_name": trainer.logger.name, "columns": columns, "checkpoints": checkpoints,
                "stopped_early": trainer.early_stopping_callback.stopped_epoch > 0}


def positional_parameters_are_lightnings():
    spec = importlib.util.spec_from_file_location("_main_block", ROOT / "sdk" / "python" / "lightning" / "_main_block.py")
    mb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mb)
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


def main(out):
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    positional_parameters_are_lightnings()
    results = {name: run_as_main(path) for name, path in FILES.items()}
    Path(out).write_text(json.dumps(results, indent=1))
    for name, r in results.items():
        print(f"{name}: {len(r['losses'])} steps, {r['epochs']} epochs, checkpoints {r['checkpoints']}")


if __name__ == "__main__":
    main(sys.argv[1])
