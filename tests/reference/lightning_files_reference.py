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
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.model_summary import ModelSummary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "reference"))
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
    "lit-hparams": ("Regressor", "Points", 1),
}

# The files whose trainer.validate/test results (a fresh model, seeded) are compared too: one dict per DataLoader.
EVALUATES = ("lit-multi-val",)

# A run of a file above with hyperparameters of its own: name: (the file's name, hparams[,
# Trainer arguments of its own]).
VARIANTS = {
    # save_hyperparameters: which hyper-parameters reach hparams.yaml (module, base class, DataModule).
    "lit-hparams-ignore": ("lit-hparams", {"save": "ignore"}),
    "lit-hparams-names": ("lit-hparams", {"save": "names"}),
    "lit-hparams-nolog": ("lit-hparams", {"save": "nolog"}),
    "lit-hparams-none": ("lit-hparams", {"save": "none"}),
    "lit-hparams-dict": ("lit-hparams", {"save": "dict"}),
    "lit-hparams-inherited": ("lit-hparams", {"save": "inherited"}),
    "lit-hparams-inherited-ignore": ("lit-hparams", {"save": "inherited-ignore"}),
    "lit-hparams-data": ("lit-hparams", {"save": "none", "data_save": "all"}),
    "lit-hparams-both": ("lit-hparams", {"data_save": "all", "lr": 0.1}),
    "lit-hparams-data-nolog": ("lit-hparams", {"data_save": "nolog"}),
    # test_log_hyperparams (loggers.md row 7): a float, int, str, bool, nested dict, list, small and large floats
    "lit-hparams-values": ("lit-hparams", {"opts": {"float": 0.3, "int": 1, "string": "abc", "bool": True,
                                                    "dict": {"a": {"b": "c"}}, "list": [1, 2, 3], "small": 1e-06,
                                                    "large": 1e16}}),
    # test_outputs_format and the flow_dict tests (loops.md rows 16, 39): training_step's dict as
    # on_train_batch_end's `outputs`
    "lit-hparams-outputs": ("lit-hparams", {"bad_return": "extra"}),
    "lit-lbfgs-manual": ("lit-lbfgs", {"manual": True}),
    "lit-lbfgs-wolfe": ("lit-lbfgs", {"line_search": "strong_wolfe"}),
    "lit-augment-generator": ("lit-augment", {"sampling": "generator"}),
    "lit-augment-sequential": ("lit-augment", {"sampling": "sequential"}),
    "lit-augment-tensors": ("lit-augment", {"sampling": "tensors"}),
    "lit-augment-replacement": ("lit-augment", {"sampling": "replacement"}),
    "lit-augment-subset": ("lit-augment", {"sampling": "subset"}),
    "lit-augment-frozen": ("lit-augment", {"freeze": True}),
    "lit-augment-weighted": ("lit-augment", {"sampling": "weighted"}),
    "lit-augment-seed-workers": ("lit-augment", {"sampling": "seed_workers"}),
    "lit-augment-worker-init": ("lit-augment", {"sampling": "worker_init"}),
    "lit-augment-persistent": ("lit-augment", {"sampling": "persistent"}),
    "lit-augment-curriculum": ("lit-augment", {"sampling": "curriculum"}, {"reload_dataloaders_every_n_epochs": 1}),
    "lit-augment-curriculum-every-2": ("lit-augment", {"sampling": "curriculum"}, {"reload_dataloaders_every_n_epochs": 2}),
    "lit-augment-curriculum-val-every-2": ("lit-augment", {"sampling": "curriculum"},
                                           {"reload_dataloaders_every_n_epochs": 2, "check_val_every_n_epoch": 2,
                                            "num_sanity_val_steps": 0}),
    # Lightning's precision plugins (issue 19): autocast around the steps (bf16-mixed), the
    # module and inputs converted (64-true, bf16-true); the alias 16 is bf16-mixed on the CPU.
    **{f"{file}-{precision}": (file, None, {"precision": precision}) for file, precision in [
        ("python-tiny-transformer", "bf16-mixed"), ("python-tiny-transformer", "64-true"),
        ("python-tiny-transformer", "bf16-true"), ("lit-resnet", "bf16-mixed"), ("lit-resnet", "64-true"),
        ("lit-nanogpt", "bf16-mixed"), ("lit-nanogpt", "bf16-true"), ("lit-mnist", "bf16-mixed"), ("lit-mnist", "64-true"),
        ("lit-boring", "bf16-true"), ("lit-multi-val", "bf16-mixed")]},
    "lit-boring-16": ("lit-boring", None, {"precision": 16}),
    # DataLoader workers (threads in lthost, making batches while the steps run with float64
    # as torch's default dtype) in 64-true: their tensors are made in float32, then converted.
    # (Not bf16-true: the file's on_after_batch_transfer multiplies by a float32 `torch.rand(1)`,
    # which Lightning's bf16-true model then refuses.)
    "lit-augment-workers-64-true": ("lit-augment", {"sampling": "seed_workers"}, {"precision": "64-true"}),
    # 16-mixed on the CPU through the plugin, with a scaler that overflows at first: manual
    # optimization's manual_backward scaled, each optimizer's step unscaled, skipped, updated.
    "lit-manual-16-mixed": ("lit-manual", None, {"mixed_precision": {"precision": "16-mixed", "device": "cpu",
                                                                     "scaler": {"init_scale": 2.0**20,
                                                                                "growth_interval": 4}}}),
    # A user's optimizer (Lion) stepped by the host under the scaler: no closure passed, as
    # MixedPrecision calls `scaler.step(optimizer)`.
    "lit-lion-16-mixed": ("lit-lion", None, {"mixed_precision": {"precision": "16-mixed", "device": "cpu",
                                                                 "scaler": {"init_scale": 2.0**20,
                                                                            "growth_interval": 4}}}),
    "lit-mnist-16-mixed": ("lit-mnist", None, {"mixed_precision": {"precision": "16-mixed", "device": "cpu",
                                                                   "scaler": {"init_scale": 2.0**20,
                                                                              "growth_interval": 4}}}),
}


# name: ModelCheckpoint arguments: the files whose checkpoint names are compared too (a
# torchmetrics object logged on_step and on_epoch, monitored by its bare name).
CHECKPOINTS = {
    "lit-mnist": {"monitor": "train_acc", "mode": "max", "filename": "{epoch}-{train_acc:.4f}", "save_top_k": 2},
}


# `Tuner(trainer).lr_find` on a file (docs/lightning-tests/tuner.md, portable case 1): name: (the file, lr_find's
# arguments, Trainer arguments). update_attr=False: lthost reports the suggestion without applying it.
LR_FINDS = {
    "lr-find-lit-boring": ("lit-boring", {"num_training": 30, "early_stop_threshold": None}, {}),
    "lr-find-lit-mnist": ("lit-mnist", {"num_training": 40, "min_lr": 1e-5}, {}),
    # test_accumulation_and_early_stopping (tuner.md row 8): 100 points over 200 batches, across
    # the ends of BoringModel's 64-batch epochs, `_total_batch_idx` 199.
    "lr-find-lit-boring-accumulate": ("lit-boring", {"early_stop_threshold": None}, {"accumulate_grad_batches": 2}),
    # The search in the run's precision: under autocast, and with 16-mixed's scaler (which
    # skips the first, overflowing steps).
    "lr-find-lit-mnist-bf16-mixed": ("lit-mnist", {"num_training": 40, "min_lr": 1e-5}, {"precision": "bf16-mixed"}),
    "lr-find-lit-mnist-16-mixed": ("lit-mnist", {"num_training": 40, "min_lr": 1e-5},
                                   {"mixed_precision": {"precision": "16-mixed", "device": "cpu",
                                                        "scaler": {"init_scale": 2.0**20, "growth_interval": 4}}}),
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


def lr_find(name, kwargs, trainer_args):
    from lightning.pytorch.tuner import Tuner
    cls_name, data_name, _ = FILES[name]
    module = load(name)
    L.seed_everything(SEED, verbose=False)
    model = made(getattr(module, cls_name), None)
    data = made(getattr(module, data_name), None) if data_name else None
    with tempfile.TemporaryDirectory() as d:
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_checkpointing=False, enable_model_summary=False, default_root_dir=d,
                            **trainer_kwargs(trainer_args))
        finder = Tuner(trainer).lr_find(model, datamodule=data, update_attr=False, **kwargs)
    return {"plugin": name, "seed": SEED, "args": kwargs, "trainer": trainer_args, "lr": finder.results["lr"],
            "loss": finder.results["loss"], "suggestion": finder.suggestion(), "total_batch_idx": finder._total_batch_idx}


class Lines(logging.Handler):
    """The messages Lightning logs while it is attached (the tuner's info lines)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def logged(fn):
    """`fn()` and the lines Lightning logs about batch sizes meanwhile."""
    lines = Lines()
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(lines)
        lg.setLevel(logging.INFO)
    try:
        out = fn()
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(lines)
            lg.setLevel(level)
    return out, [line for line in lines.lines if "atch size" in line or "margin" in line]


def held(obj, field):
    """Lightning's `lightning_getattr` for one object: its hyper-parameter over its attribute."""
    hparams = getattr(obj, "hparams", {})
    return hparams[field] if field in hparams else getattr(obj, field)


def scale_batch_size(trainer, model, data, kwargs):
    """`Tuner(trainer).scale_batch_size` and the lines it logs about batch sizes."""
    from lightning.pytorch.tuner import Tuner
    return logged(lambda: Tuner(trainer).scale_batch_size(model, datamodule=data, **kwargs))


def trainer_kwargs(trainer_args):
    """A variant's Trainer arguments; `mixed_precision` (lthost's `[trainer.mixed_precision]`)
    is Lightning's `plugins=[MixedPrecision(precision, device, scaler=GradScaler(device, **scaler))]`."""
    args = dict(trainer_args or {})
    plugin = args.pop("mixed_precision", None)
    if plugin is not None:
        from lightning.pytorch.plugins import MixedPrecision

        scaler = plugin.get("scaler")
        scaler = torch.amp.GradScaler(plugin["device"], **scaler) if scaler is not None else None
        args["plugins"] = [MixedPrecision(plugin["precision"], plugin["device"], scaler=scaler)]
    return args


def run(name, cls_name, data_name, epochs, hparams=None, trainer_args=None, lr_find=None, scale=None, bsf=None, lrf=None,
        early_stopping=None):
    """A fit of the file as lthost runs it; `lr_find`: `(lr_find's arguments, the field it sets)`:
    `Tuner(trainer).lr_find` (update_attr=True) first, on the same model, DataModule and Trainer;
    `scale`: `(scale_batch_size's arguments, the field)`: `Tuner(trainer).scale_batch_size` first;
    `bsf`: `(BatchSizeFinder's arguments, the field)`: the callback in the fit; `lrf`:
    `(LearningRateFinder's arguments, the field)`: that callback in the fit; `early_stopping`:
    EarlyStopping's arguments, that callback after them."""
    module = load(name)
    L.seed_everything(SEED, verbose=False)
    model = made(getattr(module, cls_name), hparams)
    data = made(getattr(module, data_name), hparams) if data_name else None
    tuned = {}
    with tempfile.TemporaryDirectory() as d:
        checkpoint = CHECKPOINTS.get(name)
        callbacks = [ModelCheckpoint(dirpath=Path(d) / "ck", **checkpoint)] if checkpoint else []
        if bsf is not None:
            from lightning.pytorch.callbacks import BatchSizeFinder
            callbacks.append(BatchSizeFinder(**bsf[0]))
        if lrf is not None:
            from lightning.pytorch.callbacks import LearningRateFinder
            lr_finder = LearningRateFinder(**lrf[0])
            callbacks.append(lr_finder)
        if early_stopping is not None:
            from lightning.pytorch.callbacks import EarlyStopping
            callbacks.append(EarlyStopping(**early_stopping))
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=CSVLogger(d), log_every_n_steps=1,
                            enable_progress_bar=False, enable_checkpointing=bool(checkpoint), enable_model_summary=False,
                            callbacks=callbacks, **trainer_kwargs(trainer_args))
        # The table Lightning's ModelSummary callback prints at fit start (max_depth 1; the
        # size in the Trainer's precision), where it runs no forward: without an
        # example_input_array (lthost runs none) and with the summary on.
        shown = (trainer_args or {}).get("enable_model_summary", True) and model.example_input_array is None
        model._trainer = trainer
        summary = str(ModelSummary(model, max_depth=1)) if shown else None
        model._trainer = None
        if lr_find is not None:
            from lightning.pytorch.tuner import Tuner
            kwargs, field = lr_find
            finder = Tuner(trainer).lr_find(model, datamodule=data, **kwargs)
            tuned = {"lr_find": kwargs, "suggestion": finder.suggestion(), "lr": finder.results["lr"],
                     "loss": finder.results["loss"], "field": field, "set_to": held(model, field),
                     "data_hparams": dict(data.hparams) if data is not None else None}
        if scale is not None:
            kwargs, field = scale
            size, said = scale_batch_size(trainer, model, data, kwargs)
            holder = data if data is not None and (hasattr(data, field) or field in data.hparams) else model
            tuned = {"scale_batch_size": kwargs, "found": size, "said": said, "field": field,
                     "set_to": held(holder, field)}
        if lrf is not None:
            trainer.fit(model, datamodule=data)
            kwargs, field = lrf
            found = lr_finder.optimal_lr
            tuned = {"learning_rate_finder": kwargs, "suggestion": found.suggestion(), "lr": found.results["lr"],
                     "loss": found.results["loss"], "field": field,
                     "set_to": getattr(model, field) if hasattr(model, field) else model.hparams[field],
                     "optimizer_lr": [g["lr"] for g in trainer.optimizers[0].param_groups]}
            if early_stopping is not None:
                tuned |= {"early_stopping": early_stopping, "stopped_epoch": trainer.early_stopping_callback.stopped_epoch}
        elif bsf is None:
            trainer.fit(model, datamodule=data)
        else:
            _, said = logged(lambda: trainer.fit(model, datamodule=data))
            kwargs, field = bsf
            holder = data if data is not None and (hasattr(data, field) or field in data.hparams) else model
            tuned = {"batch_size_finder": kwargs, "said": said, "field": field, "set_to": held(holder, field)}
        rows = list(csv.DictReader(open(Path(trainer.logger.log_dir) / "metrics.csv")))
        hparams_file = Path(trainer.logger.log_dir) / "hparams.yaml"
        # yaml.dump of what the file loads as, a tuple as a list: lthost's hyper-parameters are
        # JSON, which has no tuple (Lightning writes `!!python/tuple`).
        hparams_yaml = (yaml.dump(json.loads(json.dumps(yaml.full_load(hparams_file.read_text()))))
                        if hparams_file.exists() else None)
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
            "last": last, "checkpoint": checkpoint, "checkpoints": saved, "hparams_yaml": hparams_yaml, "summary": summary,
            **tuned}


# Runs with Lightning's TensorBoardLogger: name: (file, hparams). What the event file holds
# (read_tensorboard.py: every scalar, hp_metric included, and the hparams plugin's data) and
# hparams.yaml.
TENSORBOARD = {
    # A module and a DataModule that log, with a list, None, and a nested dict (flattened).
    "lit-hparams-tensorboard": ("lit-hparams", {"data_save": "all", "lr": 0.1, "flags": [1, 2], "tag": None,
                                                "opts": {"depth": {"n": 2}, "on": True}}),
    # Nothing saved: no hp_metric, no hparams data, and an hparams.yaml of `{}`.
    "lit-hparams-tensorboard-none": ("lit-hparams", {"save": "none"}),
}


def tensorboard_run(file, hparams):
    from lightning.pytorch.loggers import TensorBoardLogger

    from read_tensorboard import read
    cls_name, data_name, epochs = FILES[file]
    module = load(file)
    L.seed_everything(SEED, verbose=False)
    model = made(getattr(module, cls_name), hparams)
    data = made(getattr(module, data_name), hparams)
    with tempfile.TemporaryDirectory() as d:
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=TensorBoardLogger(d),
                            log_every_n_steps=1, enable_progress_bar=False, enable_checkpointing=False,
                            enable_model_summary=False)
        trainer.fit(model, datamodule=data)
        return {"plugin": file, "hparams": hparams, "seed": SEED, "epochs": epochs, "read": read(trainer.logger.log_dir),
                "hparams_yaml": (Path(trainer.logger.log_dir) / "hparams.yaml").read_text()}


# Loggers made with Lightning's arguments (lthost's [loggers.csv] / [loggers.tensorboard]):
# name: {kind: arguments}, a save_dir relative to the run's directory. Recorded: every file the
# run writes (an event file's time, host and pid left out), each metrics.csv's header, the bar's
# v_num (a string version's last 4 characters).
LOGGER_OPTIONS = {
    "loggers-csv-named": {"csv": {"name": "exp", "version": "run-a", "prefix": "tmp"}},
    "loggers-tensorboard-unnamed": {"tensorboard": {"name": "", "version": 3, "prefix": "p",
                                                    "default_hp_metric": False}},
    "loggers-two": {"csv": {"save_dir": "logs", "name": "c"},
                    "tensorboard": {"save_dir": "logs", "name": "t", "version": 7, "sub_dir": "sub"}},
    # TensorBoard first, with a sub_dir: its files go there, the checkpoints stay in the version directory.
    "loggers-tensorboard-sub-dir": {"tensorboard": {"sub_dir": "a/b"}, "csv": {"name": "c"}},
}


def logger_options_run(loggers):
    from lightning.pytorch.callbacks.progress.progress_bar import get_standard_metrics
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    module = load("lit-hparams")
    L.seed_everything(SEED, verbose=False)
    model, data = made(module.Regressor, None), made(module.Points, None)
    with tempfile.TemporaryDirectory() as d:
        made_loggers = []
        for kind, args in loggers.items():
            args = dict(args)
            save_dir = Path(d) / args.pop("save_dir", "")
            made_loggers.append((CSVLogger if kind == "csv" else TensorBoardLogger)(save_dir, **args))
        trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=made_loggers, log_every_n_steps=1,
                            enable_progress_bar=False, enable_model_summary=False, default_root_dir=d)
        trainer.fit(model, datamodule=data)
        files = sorted(str(p.relative_to(d)) for p in Path(d).rglob("*") if p.is_file())
        files = [f.split("events.out.tfevents.")[0] + "events.out.tfevents" if "events.out.tfevents." in f else f
                 for f in files]
        headers = {f: (Path(d) / f).read_text().splitlines()[0] for f in files if f.endswith("metrics.csv")}
        return {"loggers": loggers, "order": list(loggers), "seed": SEED, "files": files, "headers": headers,
                "v_num": str(get_standard_metrics(trainer)["v_num"])}


# Lightning files Lightning refuses to fit: name: (file, hparams), the message of the RuntimeError it raises.
REFUSED = {
    "lit-multi-val-no-idx": ("lit-multi-val", {"signature": "no_idx"}),
    "lit-multi-val-required-idx": ("lit-multi-val", {"signature": "required_idx", "val_loaders": 1}),
    # The module and the DataModule both log `lr`, with different values.
    "lit-hparams-conflict": ("lit-hparams", {"data_save": "all"}),
    # What training_step may return (loops.md row 91): an int in manual and in automatic optimization, a dict
    # without "loss" in automatic.
    "lit-manual-bad-return": ("lit-manual", {"bad_return": True}),
    "lit-hparams-bad-return-int": ("lit-hparams", {"bad_return": "int"}),
    "lit-hparams-bad-return-dict": ("lit-hparams", {"bad_return": "dict"}),
    # test_log_invalid_raises and test_logging_raises (b) (logging.md rows 21, 23): what `self.log` cannot take
    **{f"lit-hparams-log-invalid-{i}": ("lit-hparams", {"log_invalid": {"value": v}})
       for i, v in enumerate([None, {"a": None}, {"a": 1}, {"a": {"b": 1}}, "foo", [1, 2, 3], [[1, 2], 3]])},
    "lit-hparams-log-metric-not-held": ("lit-hparams", {"log_invalid": {"metric": True}}),
}


# `Tuner(trainer).lr_find(model, datamodule)` with its default update_attr=True, then
# `trainer.fit(model, datamodule)` on the same objects (`lthost fit --lr-find`): name: (the file,
# hparams, lr_find's arguments, the field it sets, max_epochs: the search's limit too).
LR_FIND_FITS = {
    # `learning_rate`: an attribute of the module (no save_hyperparameters).
    "lr-find-fit-lit-mnist": ("lit-mnist", None, {"num_training": 40, "min_lr": 1e-5}, "learning_rate", 3),
    # `lr`: the module's attribute and hyper-parameter, and the DataModule's hyper-parameter;
    # hparams.yaml keeps the initial values (Lightning logs hparams_initial).
    "lr-find-fit-lit-hparams": ("lit-hparams", {"data_save": "all", "lr": 0.1},
                                {"num_training": 30, "max_lr": 0.05, "early_stop_threshold": None}, "lr", 8),
    # test_trainer_arg_str (tuner.md row 5): `attr_name="my_fancy_lr"`, the module's attribute or hyper-parameter.
    **{f"lr-find-fit-lit-hparams-fancy-{where}": ("lit-hparams", {"fancy": where},
                                                   {"num_training": 30, "max_lr": 0.05, "early_stop_threshold": None,
                                                    "attr_name": "my_fancy_lr"}, "my_fancy_lr", 8)
       for where in ("attr", "hparams")},
}

# `Tuner(trainer).scale_batch_size` then `trainer.fit` on the same objects (docs/lightning-tests/tuner.md
# rows 28, 34, 39, 52): name: (the file, hparams, scale_batch_size's arguments, the field, epochs).
SCALE_BATCH_SIZE_FITS = {
    # power: the DataModule's attribute; the first trial at the DataModule's own 32, then 4, 8, ...,
    # 256, and 512 ≥ the 448 training images ends it. The DataModule's setup draws its images
    # again for the fit, from the generator after the trials.
    "scale-fit-lit-autoencoder": ("lit-autoencoder", None, {"steps_per_trial": 2}, "batch_size", 2),
    # binsearch, max_trials 3: 8 (its own), 4, 8 → 7 with the 5 % margin.
    "scale-fit-lit-hparams-binsearch": ("lit-hparams", {"data_save": "all", "lr": 0.2},
                                        {"mode": "binsearch", "max_trials": 3, "steps_per_trial": 1}, "batch_size", 2),
    # power, init_val 16 and max_val 24: one trial at 8 (its own), then 32 ≥ 24 ends the search
    # with 32 (power mode can return a size past max_val).
    "scale-fit-lit-hparams-max-val": ("lit-hparams", None, {"init_val": 16, "max_val": 24}, "batch_size", 1),
    # test_auto_scale_batch_size_set_model_attribute (tuner.md row 31): the size kept on the module, as an
    # attribute or a hyper-parameter, which the DataModule's loaders read through `trainer.lightning_module`.
    **{f"scale-fit-lit-hparams-model-{where}": ("lit-hparams", {"batch_on_model": where},
                                                 {"mode": "binsearch", "max_trials": 3, "steps_per_trial": 1}, "batch_size", 2)
       for where in ("attr", "hparams")},
    # Out of memory above 40 (the file raises CUDA's message, which Lightning's is_oom_error takes on
    # any device): power fails at 64 and halves to 32; binsearch bisects to 40 and takes 5 % off.
    # Dropout and a shuffled loader: the fit after depends on every draw the trials made.
    "scale-fit-lit-classifier-oom-power": ("lit-classifier", {"oom_above": 40}, {"steps_per_trial": 2}, "batch_size", 2),
    "scale-fit-lit-classifier-oom-binsearch": ("lit-classifier", {"oom_above": 40},
                                               {"mode": "binsearch", "steps_per_trial": 2}, "batch_size", 2),
}

# The `BatchSizeFinder` callback in a fit (`[callbacks.batch_size_finder]`): name: (the file, hparams, its
# arguments, the field, epochs). The search at on_fit_start, then the same fit at the size found
# (tuner.md row 41).
BATCH_SIZE_FINDER_FITS = {
    "bsf-fit-lit-autoencoder": ("lit-autoencoder", None, {"steps_per_trial": 2, "max_trials": 4}, "batch_size", 2),
    "bsf-fit-lit-hparams-binsearch": ("lit-hparams", {"data_save": "all", "lr": 0.2},
                                      {"mode": "binsearch", "max_trials": 3, "steps_per_trial": 1}, "batch_size", 2),
    # Out of memory above 40 inside the fit: binsearch, then the same fit at 38 (optimizer, plateau
    # scheduler and metrics as the trials left them put back).
    "bsf-fit-lit-classifier-oom": ("lit-classifier", {"oom_above": 40}, {"mode": "binsearch", "steps_per_trial": 2},
                                   "batch_size", 2),
}

# The `LearningRateFinder` callback in a fit (`[callbacks.learning_rate_finder]`): name: (the file, hparams,
# its arguments, the field, epochs). The search at on_fit_start under isolate_rng, then the same fit with the
# suggestion in the field and the optimizer's groups (tuner.md rows 19, 23).
LR_FINDER_FITS = {
    # `lr` in the module's hparams; AdamW with two parameter groups, dropout and a shuffled loader.
    "lrf-fit-lit-classifier": ("lit-classifier", None, {"num_training_steps": 30, "early_stop_threshold": None},
                               "lr", 2),
    # `lr` on module and DataModule (attribute and hyper-parameter), SGD.
    "lrf-fit-lit-hparams": ("lit-hparams", {"data_save": "all", "lr": 0.2},
                            {"num_training_steps": 20, "max_lr": 0.05, "early_stop_threshold": None}, "lr", 5),
    # The loss diverges after 14 of 20 steps (threshold 4): the search's stop does not stop the fit.
    "lrf-fit-lit-hparams-diverging": ("lit-hparams", {"data_save": "all", "lr": 0.2},
                                      {"num_training_steps": 20, "max_lr": 100.0, "min_lr": 1e-3}, "lr", 5),
    # test_lr_finder_with_early_stopping (tuner.md row 21): update_attr=False beside EarlyStopping on
    # val_loss and ReduceLROnPlateau on val_loss: the search only reports, the fit keeps lr 1e-2 and
    # EarlyStopping (set aside during the search) ends it.
    "lrf-fit-lit-classifier-early-stopping": ("lit-classifier", None, {"num_training_steps": 20, "update_attr": False},
                                              "lr", 12),
}

# EarlyStopping beside a run's other callbacks: name: its arguments.
EARLY_STOPPING = {
    "lrf-fit-lit-classifier-early-stopping": {"monitor": "val_loss", "patience": 2, "min_delta": 0.02},
}

# Both finder callbacks in one fit, in this list order (lthost's fixed order): the batch-size search,
# then the learning-rate search at the size found, then the fit.
BOTH_FINDERS = {
    "finders-both-lit-classifier": ("lit-classifier", None, {"steps_per_trial": 2, "max_trials": 3},
                                    {"num_training_steps": 20}, 2),
}

# The batch-size finder in validate, test and predict (docs/lightning-tests/tuner.md rows 40, 41):
# name: (the file, hparams, the stage, the finder's arguments, how). "callback": `BatchSizeFinder`
# in `Trainer(callbacks=[...])`, searching at the stage's start, then that run at the size found;
# "tuner": `Tuner(trainer).scale_batch_size(method=stage)`, then the stage's own run.
EVAL_BATCH_SIZE = {
    # From init_val 2 (the loop asks for its loader again at each trial): 2, 4, 8, 16.
    "bsf-validate-lit-autoencoder": ("lit-autoencoder", None, "validate", {"max_trials": 4, "steps_per_trial": 2},
                                     "callback"),
    # lit-hparams with `noisy`: each loader request draws its points' noise, so the run's data
    # depends on every loader asked for and every iterator made before it.
    # The DataModule's attribute and hyper-parameter: 2, 4, 8, 16, then 32, as many as the points, ends it.
    "bsf-test-lit-hparams": ("lit-hparams", {"data_save": "all", "lr": 0.2, "noisy": True}, "test", {"max_trials": 6},
                             "callback"),
    # A predict trial runs every batch (Lightning limits its evaluation loops only).
    "bsf-predict-lit-hparams": ("lit-hparams", {"noisy": True}, "predict", {"max_trials": 3, "init_val": 4}, "callback"),
    "scale-validate-lit-hparams-binsearch": ("lit-hparams", {"data_save": "all", "lr": 0.2, "noisy": True}, "validate",
                                             {"mode": "binsearch", "max_trials": 3, "steps_per_trial": 1}, "tuner"),
    "scale-predict-lit-hparams": ("lit-hparams", {"noisy": True}, "predict", {"max_trials": 2}, "tuner"),
    # Out of memory above 12 in test_step and predict_step: the trial at 16 fails, power mode halves to 8 and
    # binsearch bisects to 12, less 5 %: 11; the plugin goes on after each failed step.
    "bsf-test-lit-hparams-oom": ("lit-hparams", {"oom_above": 12, "noisy": True}, "test", {"max_trials": 6},
                                 "callback"),
    "scale-predict-lit-hparams-oom": ("lit-hparams", {"oom_above": 12, "noisy": True}, "predict",
                                      {"mode": "binsearch", "max_trials": 8}, "tuner"),
    # No finder: steps that take the batch alone (test_evaluation_loop_when_batch_idx_argument_is_not_given,
    # test_prediction_loop_when_batch_idx_argument_is_not_given; loops.md rows 51, 80).
    **{f"{stage}-lit-hparams-batch-only": ("lit-hparams", {"signature": "batch_only", "noisy": True}, stage, {}, None)
       for stage in ("validate", "test", "predict")},
}


def eval_batch_size_run(file, hparams, stage, kwargs, how):
    from lightning.pytorch.callbacks import BatchSizeFinder
    from lightning.pytorch.tuner import Tuner
    cls_name, data_name, _ = FILES[file]
    module = load(file)
    L.seed_everything(SEED, verbose=False)
    model = made(getattr(module, cls_name), hparams)
    data = made(getattr(module, data_name), hparams)
    with tempfile.TemporaryDirectory() as d:
        callbacks = [BatchSizeFinder(**kwargs)] if how == "callback" else []
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=callbacks, default_root_dir=d)

        def go():
            if how == "tuner":
                Tuner(trainer).scale_batch_size(model, datamodule=data, method=stage, **kwargs)
            if stage == "predict":
                return trainer.predict(model, datamodule=data)
            return getattr(trainer, stage)(model, datamodule=data, verbose=False)

        out, said = logged(go)
    out_of = {"predictions": [p.tolist() for p in out]} if stage == "predict" else {
        "results": [{k: float(v) for k, v in r.items()} for r in out]}
    return {"plugin": file, "seed": SEED, "hparams": hparams, "stage": stage, "how": how, "args": kwargs, "said": said,
            "set_to": data.batch_size, "data_hparams": dict(data.hparams), **out_of}


# lr_find refused before any step: name: (the file, hparams). BoringModel holds no lr field.
LR_FIND_REFUSED = {
    "lr-find-fit-lit-boring": ("lit-boring", None),
}


def refused(file, hparams, lr_find=None, scale=None):
    from lightning.pytorch.utilities.exceptions import MisconfigurationException
    try:
        run(file, *FILES[file], hparams, None, lr_find, scale)
    except (RuntimeError, AttributeError, ValueError, MisconfigurationException) as e:
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
    for name, (file, hparams) in TENSORBOARD.items():
        out[name] = tensorboard_run(file, hparams)
    for name, loggers in LOGGER_OPTIONS.items():
        out[name] = logger_options_run(loggers)
    for name, (file, hparams) in REFUSED.items():
        out[name] = refused(file, hparams)
    for name, (file, kwargs, trainer_args) in LR_FINDS.items():
        out[name] = lr_find(file, kwargs, trainer_args)
    for name, (file, hparams, kwargs, field, epochs) in LR_FIND_FITS.items():
        cls_name, data_name, _ = FILES[file]
        out[name] = run(file, cls_name, data_name, epochs, hparams, None, (kwargs, field))
    for name, (file, hparams, kwargs, field, epochs) in SCALE_BATCH_SIZE_FITS.items():
        cls_name, data_name, _ = FILES[file]
        out[name] = run(file, cls_name, data_name, epochs, hparams, None, None, (kwargs, field))
    for name, (file, hparams, kwargs, field, epochs) in BATCH_SIZE_FINDER_FITS.items():
        cls_name, data_name, _ = FILES[file]
        out[name] = run(file, cls_name, data_name, epochs, hparams, None, None, None, (kwargs, field))
    for name, (file, hparams, kwargs, field, epochs) in LR_FINDER_FITS.items():
        cls_name, data_name, _ = FILES[file]
        out[name] = run(file, cls_name, data_name, epochs, hparams, None, None, None, None, (kwargs, field),
                        EARLY_STOPPING.get(name))
    for name, (file, hparams, bsf, lrf, epochs) in BOTH_FINDERS.items():
        cls_name, data_name, _ = FILES[file]
        out[name] = run(file, cls_name, data_name, epochs, hparams, None, None, None, (bsf, "batch_size"), (lrf, "lr"))
        out[name]["batch_size_finder"] = bsf
    for name, (file, hparams, stage, kwargs, how) in EVAL_BATCH_SIZE.items():
        out[name] = eval_batch_size_run(file, hparams, stage, kwargs, how)
    for name, (file, hparams) in LR_FIND_REFUSED.items():
        out[name] = refused(file, hparams, ({}, None))
    # test_error_with_multiple_optimizers (tuner.md row 1): two optimizers (manual optimization),
    # searched without update_attr (`lthost lr-find`): refused before any step.
    out["lr-find-lit-manual"] = refused("lit-manual", None, ({"update_attr": False}, None))
    # BoringModel holds no batch_size either (BatchSizeFinder.setup refuses it).
    out["scale-fit-lit-boring"] = refused("lit-boring", None, None, ({}, "batch_size"))
    Path(path).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
