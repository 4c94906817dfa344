"""Lightning 2.6.6's own LightningCLI on tests/plugins/lit-classifier/model.py (LitClassifier,
Blobs) with tests/reference/files/lightning_cli.yaml, as `python main.py fit --config
lightning_cli.yaml --trainer.default_root_dir DIR` runs it, in a temporary directory that is
also the working directory (the config's relative CSVLogger save_dir resolves against it).
Records every metrics.csv row (epoch and step as ints, the other cells as floats, empty cells
left out), LearningRateMonitor's lr-SGD, the checkpoint ModelCheckpoint kept, hparams.yaml, the
files the run wrote and what LightningCLI warned, for the lthost `fit --config` test to compare.
Run by `make reference`:

    .venv/bin/python tests/reference/lightning_cli_reference.py tests/reference/lightning_cli.json
"""

import contextlib
import csv
import importlib.util
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.cli import LightningCLI

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "tests" / "plugins" / "lit-classifier" / "model.py"
CONFIG = ROOT / "tests" / "plugins" / "lit-classifier" / "config.yaml"
CLASSES = ("LitClassifier", "Blobs")


def cell(key, value):
    return int(value) if key in ("epoch", "step") else float(value)


def main(path):
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("lightning_file_lit_classifier", FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model_class, data_class = (getattr(module, name) for name in CLASSES)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Run as `main.py fit ...` would be: no other command-line arguments beside `args`
        # (LightningCLI warns about both), in the temporary directory.
        argv, sys.argv = sys.argv, sys.argv[:1]
        os.chdir(d)
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                cli = LightningCLI(model_class, data_class,
                                   args=["fit", "--config", str(CONFIG), "--trainer.default_root_dir", d],
                                   save_config_kwargs={"overwrite": True})
        finally:
            os.chdir(cwd)
            sys.argv = argv
        log_dir = Path(d) / cli.trainer.log_dir
        rows = list(csv.DictReader(open(log_dir / "metrics.csv")))
        hparams = yaml.safe_load((log_dir / "hparams.yaml").read_text())
        files = sorted(str(p.relative_to(d)) for p in Path(d).rglob("*") if p.is_file())
        ckpt = cli.trainer.checkpoint_callback
        checkpoints = sorted(p.name for p in (Path(d) / ckpt.dirpath).glob("*.ckpt"))
    said = [str(w.message) for w in caught if Path(w.filename).match("lightning/pytorch/cli.py")]
    out = {
        "lightning": L.__version__, "torch": torch.__version__.split("+")[0],
        "plugin": "lit-classifier", "classes": list(CLASSES), "config": str(CONFIG.relative_to(ROOT)),
        "log_dir": str(cli.trainer.log_dir), "columns": list(rows[0].keys()),
        "rows": [{k: cell(k, v) for k, v in r.items() if v != ""} for r in rows],
        "lr_monitor": [{"step": int(r["step"]), "lr-SGD": float(r["lr-SGD"])} for r in rows if r["lr-SGD"]],
        "checkpoints": checkpoints, "best_model_path": ckpt.best_model_path, "best_model_score": float(ckpt.best_model_score),
        "hparams": hparams, "files": files, "warnings": list(dict.fromkeys(said)),
    }
    Path(path).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
