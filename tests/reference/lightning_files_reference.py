"""Reference runs of the unmodified Lightning files in plugins/ (lit-boring, lit-autoencoder,
lit-nanogpt, lit-resnet) in Lightning 2.6.6 itself: seed_everything(SEED),
Trainer(max_epochs=<the file's epochs>, accelerator="cpu",
log_every_n_steps=1), the training loss of every step, the last validation loss and the last value of every
metrics.csv column, for
tests/e2e/lightning_files.rs to compare lthost's runs of the same files with. Run by
`make reference`:

    .venv/bin/python tests/reference/lightning_files_reference.py tests/reference/lightning_files.json
"""

import csv
import importlib.util
import inspect
import json
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

ROOT = Path(__file__).resolve().parents[2]
SEED = 42
# name: (LightningModule, LightningDataModule, epochs)
FILES = {
    "lit-boring": ("BoringModel", None, 2),
    "lit-autoencoder": ("LitAutoEncoder", "RandomImages", 2),
    "lit-nanogpt": ("NanoGPT", "TokenStream", 2),
    "lit-resnet": ("LitResNet", "QuadrantImages", 3),
    "lit-mnist": ("LitMNIST", "BandImages", 3),
    "lit-lion": ("LionMlp", "Regression", 4),
    "lit-manual": ("TwoOptimizers", "Data", 2),
    "python-tiny-transformer": ("TinyTransformer", "Tokens", 2),
    "lit-augment": ("Classifier", "Points", 3),
    "lit-stream": ("StreamModel", "Streams", 3),
    "lit-lbfgs": ("CurveFit", "Curve", 2),
    "lit-classifier": ("LitClassifier", "Blobs", 3),
    "lit-multi-val": ("MultiVal", "TwoSets", 2),
}

# The files whose trainer.validate/test results (a fresh model, seeded) are compared too: one dict per DataLoader.
EVALUATES = ("lit-multi-val",)

# A run of a file above with hyperparameters of its own: name: (the file's name, hparams[,
# Trainer arguments of its own]).
VARIANTS = {
    "lit-lbfgs-manual": ("lit-lbfgs", {"manual": True}),
    "lit-lbfgs-wolfe": ("lit-lbfgs", {"line_search": "strong_wolfe"}),
    "lit-augment-generator": ("lit-augment", {"sampling": "generator"}),
    "lit-augment-sequential": ("lit-augment", {"sampling": "sequential"}),
    "lit-augment-tensors": ("lit-augment", {"sampling": "tensors"}),
    "lit-augment-replacement": ("lit-augment", {"sampling": "replacement"}),
    "lit-augment-subset": ("lit-augment", {"sampling": "subset"}),
    "lit-augment-weighted": ("lit-augment", {"sampling": "weighted"}),
    "lit-augment-seed-workers": ("lit-augment", {"sampling": "seed_workers"}),
    "lit-augment-worker-init": ("lit-augment", {"sampling": "worker_init"}),
    "lit-augment-persistent": ("lit-augment", {"sampling": "persistent"}),
    "lit-augment-curriculum": ("lit-augment", {"sampling": "curriculum"}, {"reload_dataloaders_every_n_epochs": 1}),
    "lit-augment-curriculum-every-2": ("lit-augment", {"sampling": "curriculum"}, {"reload_dataloaders_every_n_epochs": 2}),
    "lit-augment-curriculum-val-every-2": ("lit-augment", {"sampling": "curriculum"},
                                           {"reload_dataloaders_every_n_epochs": 2, "check_val_every_n_epoch": 2,
                                            "num_sanity_val_steps": 0}),
}


# name: ModelCheckpoint arguments: the files whose checkpoint names are compared too (a
# torchmetrics object logged on_step and on_epoch, monitored by its bare name).
CHECKPOINTS = {
    "lit-mnist": {"monitor": "train_acc", "mode": "max", "filename": "{epoch}-{train_acc:.4f}", "save_top_k": 2},
}


# `Tuner(trainer).lr_find` on a file (docs/lightning-tests/tuner.md, portable case 1): name: (the file, lr_find's
# arguments). update_attr=False: lthost reports the suggestion without applying it.
LR_FINDS = {
    "lr-find-lit-boring": ("lit-boring", {"num_training": 30, "early_stop_threshold": None}),
    "lr-find-lit-mnist": ("lit-mnist", {"num_training": 40, "min_lr": 1e-5}),
}


def made(cls, hparams):
    """`cls` made with the hyperparameters its __init__ takes (lthost gives each class its own)."""
    takes = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in (hparams or {}).items() if k in takes})


def load(name):
    path = ROOT / "plugins" / name / "model.py"
    if not path.exists():
        path = ROOT / "tests" / "plugins" / name / "model.py"
    spec = importlib.util.spec_from_file_location(f"lightning_file_{name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    # Each lthost run is a process of its own: a file that sets torch's float32 matmul precision
    # when imported (lit-classifier) must not leave it set for the files run after it here.
    torch.set_float32_matmul_precision("highest")
    spec.loader.exec_module(module)
    return module


def lr_find(name, kwargs):
    from lightning.pytorch.tuner import Tuner
    cls_name, data_name, _ = FILES[name]
    module = load(name)
    L.seed_everything(SEED, verbose=False)
    model = made(getattr(module, cls_name), None)
    data = made(getattr(module, data_name), None) if data_name else None
    with tempfile.TemporaryDirectory() as d:
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_checkpointing=False, enable_model_summary=False, default_root_dir=d)
        finder = Tuner(trainer).lr_find(model, datamodule=data, update_attr=False, **kwargs)
    return {"plugin": name, "seed": SEED, "args": kwargs, "lr": finder.results["lr"], "loss": finder.results["loss"],
            "suggestion": finder.suggestion()}


def run(name, cls_name, data_name, epochs, hparams=None, trainer_args=None):
    module = load(name)
    L.seed_everything(SEED, verbose=False)
    model = made(getattr(module, cls_name), hparams)
    data = made(getattr(module, data_name), hparams) if data_name else None
    with tempfile.TemporaryDirectory() as d:
        checkpoint = CHECKPOINTS.get(name)
        callbacks = [ModelCheckpoint(dirpath=Path(d) / "ck", **checkpoint)] if checkpoint else []
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=CSVLogger(d), log_every_n_steps=1,
                            enable_progress_bar=False, enable_checkpointing=bool(checkpoint), enable_model_summary=False,
                            callbacks=callbacks, **(trainer_args or {}))
        trainer.fit(model, datamodule=data)
        rows = list(csv.DictReader(open(Path(trainer.logger.log_dir) / "metrics.csv")))
        saved = sorted(p.name for p in (Path(d) / "ck").glob("*.ckpt")) if checkpoint else None
    train = {int(r["step"]): float(r["train_loss"]) for r in rows if r.get("train_loss")}
    val = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    last = {k: float(v) for r in rows for k, v in r.items() if k not in ("epoch", "step") and v}
    results = {}
    if name in EVALUATES:
        for stage in ("validate", "test"):
            L.seed_everything(SEED, verbose=False)
            model = made(getattr(module, cls_name), hparams)
            data = made(getattr(module, data_name), hparams) if data_name else None
            t = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
            results[stage] = [{k: float(v) for k, v in r.items()} for r in getattr(t, stage)(model, datamodule=data, verbose=False)]
    return {"seed": SEED, "epochs": epochs, "results": results, "plugin": name, "hparams": hparams, "trainer": trainer_args, "train_loss": [train[k] for k in sorted(train)], "last_val_loss": val[-1] if val else None,
            "last": last, "checkpoint": checkpoint, "checkpoints": saved}


# Lightning files Lightning refuses to fit: name: (file, hparams), the message of the RuntimeError it raises.
REFUSED = {
    "lit-multi-val-no-idx": ("lit-multi-val", {"signature": "no_idx"}),
    "lit-multi-val-required-idx": ("lit-multi-val", {"signature": "required_idx", "val_loaders": 1}),
}


def refused(file, hparams):
    try:
        run(file, *FILES[file], hparams)
    except RuntimeError as e:
        return {"plugin": file, "hparams": hparams, "error": str(e)}
    raise AssertionError(f"{file} {hparams}: Lightning fitted it")


def main(path):
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    out = {"lightning": L.__version__, "torch": torch.__version__.split("+")[0]}
    for name, (cls_name, data_name, epochs) in FILES.items():
        out[name] = run(name, cls_name, data_name, epochs)
    for name, (file, hparams, *trainer_args) in VARIANTS.items():
        out[name] = run(file, *FILES[file], hparams, *trainer_args)
    for name, (file, hparams) in REFUSED.items():
        out[name] = refused(file, hparams)
    for name, (file, kwargs) in LR_FINDS.items():
        out[name] = lr_find(file, kwargs)
    Path(path).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
