"""ModelCheckpoint from Lightning itself: which files each configuration leaves in the
checkpoint directory, and what it reports as best and last, on the hook-recording model of
lightning_reference.py (16 samples, batch 4: 4 training steps per epoch; `scripted` is
logged in validation with the script's value for the epoch). tests/e2e/checkpoint_callback.rs
runs lthost's hook-recorder plugin with the same settings and compares.

    .venv/bin/python tests/reference/checkpoint_reference.py tests/reference/checkpoint.json
"""

import json
import math
import logging
import os
import sys
import tempfile
import warnings
from datetime import timedelta

import torch

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lightning_reference import SCRIPT, Recorder  # noqa: E402

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
torch.set_num_threads(1)

# name: (ModelCheckpoint args, trainer args, model args); every run: logger off, the
# checkpoint directory given, seed 0.
CASES = {
    "default": ({}, {"max_epochs": 3}, {}),
    # test_model_checkpoint.md extension D: no dirpath, so `<default_root_dir>/checkpoints` (no logger)
    "default_dirpath": ({"dirpath": None}, {"max_epochs": 2}, {}),
    "default_dirpath_top_2_last": ({"dirpath": None, "monitor": "scripted", "save_top_k": 2, "save_last": True},
                                   {"max_epochs": 4}, {"script": SCRIPT}),
    "top2_min": ({"monitor": "scripted", "save_top_k": 2}, {"max_epochs": 6}, {"script": SCRIPT}),
    "all_max_with_last": ({"monitor": "scripted", "mode": "max", "save_top_k": -1, "save_last": True}, {"max_epochs": 3}, {"script": SCRIPT}),
    "no_monitor_keep_all": ({"save_top_k": -1}, {"max_epochs": 3}, {}),
    "top_0_with_last": ({"save_top_k": 0, "save_last": True}, {"max_epochs": 2}, {}),
    "every_n_epochs_0_with_last": ({"every_n_epochs": 0, "save_last": True}, {"max_epochs": 3}, {}),
    "every_2_epochs_with_last": ({"every_n_epochs": 2, "save_last": True}, {"max_epochs": 5}, {}),
    "every_3_steps": ({"every_n_train_steps": 3, "save_top_k": -1}, {"max_epochs": 2}, {}),
    "steps_wait_for_the_monitor": ({"every_n_train_steps": 3, "monitor": "scripted", "save_top_k": -1}, {"max_epochs": 3}, {"script": SCRIPT}),
    "monitor_missing_before_validation": (
        {"monitor": "scripted", "save_top_k": -1, "save_on_train_epoch_end": True},
        {"max_epochs": 4, "check_val_every_n_epoch": 2}, {"script": SCRIPT}),
    "nan_first": ({"monitor": "scripted", "save_top_k": 2}, {"max_epochs": 4}, {"script": ["nan", 0.9, "nan", 0.95]}),
    "nan_max": ({"monitor": "scripted", "mode": "max"}, {"max_epochs": 3}, {"script": [0.5, "nan", 0.4]}),
    "format_specs": ({"monitor": "scripted", "filename": "{epoch:03d}-{step:05d}-{scripted:.3f}-{scripted}"}, {"max_epochs": 2}, {"script": SCRIPT}),
    "no_auto_insert": ({"filename": "ep{epoch:02d}_s{step}", "auto_insert_metric_name": False, "save_top_k": -1}, {"max_epochs": 2}, {}),
    "missing_template_key": ({"filename": "{epoch}-{nothing:.2f}"}, {"max_epochs": 1}, {}),
    # where epoch saves happen: validation every 2 epochs, by an int interval, every batch
    "val_every_2_epochs": ({"save_top_k": -1}, {"max_epochs": 4, "check_val_every_n_epoch": 2}, {}),
    "val_check_interval_int_epoch": ({"monitor": "scripted", "save_top_k": -1}, {"max_epochs": 2, "val_check_interval": 4}, {"script": SCRIPT}),
    "val_check_interval_1": ({"save_top_k": -1}, {"max_epochs": 1, "val_check_interval": 1}, {}),
    # training-step values are monitor candidates at a mid-epoch validation's save
    "train_metric_mid_epoch": ({"monitor": "train_loss", "save_top_k": -1, "filename": "{epoch}-{step}-{train_loss:.3f}"},
                               {"max_epochs": 2, "val_check_interval": 0.5}, {}),
    # save_last="link": last.ckpt a relative symlink to the newest checkpoint saved
    "link_top2": ({"monitor": "scripted", "save_top_k": 2, "save_last": "link"}, {"max_epochs": 6}, {"script": SCRIPT}),
    "link_no_monitor": ({"save_last": "link"}, {"max_epochs": 3}, {}),
    "link_top_0": ({"save_top_k": 0, "save_last": "link"}, {"max_epochs": 2}, {}),
    "link_every_3_steps": ({"every_n_train_steps": 3, "save_top_k": -1, "save_last": "link"}, {"max_epochs": 2}, {}),
    "link_steps_wait_for_the_monitor": ({"every_n_train_steps": 3, "monitor": "scripted", "save_last": "link"},
                                        {"max_epochs": 3}, {"script": SCRIPT}),
    "link_every_2_epochs": ({"every_n_epochs": 2, "save_last": "link"}, {"max_epochs": 5}, {}),
    # from Lightning's own tests (tests_pytorch/checkpointing/test_model_checkpoint.py; the
    # survey in docs/lightning-tests/test_model_checkpoint.md)
    "empty_filename": ({"filename": ""}, {"max_epochs": 2}, {}),
    "same_name_no_monitor": ({"filename": "model"}, {"max_epochs": 4, "limit_val_batches": 0}, {}),
    "every_1_epochs_all": ({"every_n_epochs": 1, "save_top_k": -1, "filename": "{epoch}"}, {"max_epochs": 5}, {}),
    "every_2_epochs_all": ({"every_n_epochs": 2, "save_top_k": -1, "filename": "{epoch}"}, {"max_epochs": 5}, {}),
    "every_3_epochs_all": ({"every_n_epochs": 3, "save_top_k": -1, "filename": "{epoch}"}, {"max_epochs": 5}, {}),
    "monitor_epoch_all": ({"monitor": "epoch", "mode": "max", "save_top_k": -1, "filename": "{epoch}"}, {"max_epochs": 3}, {}),
    "nan_first_top1_min": ({"monitor": "scripted"}, {"max_epochs": 4}, {"script": ["nan", 8, 7, 5]}),
    "nan_first_top1_max": ({"monitor": "scripted", "mode": "max"}, {"max_epochs": 4}, {"script": ["nan", 5, 7, 8]}),
    # test_current_score_when_nan: only NaN scores (best_model_score and best_k_models compared)
    "nan_only_min": ({"monitor": "scripted"}, {"max_epochs": 1}, {"script": ["nan"]}),
    "nan_only_max": ({"monitor": "scripted", "mode": "max"}, {"max_epochs": 1}, {"script": ["nan"]}),
    "vci_0.2_all": ({"monitor": "scripted", "mode": "max", "save_top_k": -1}, {"max_epochs": 1, "val_check_interval": 0.2},
                    {"samples": 40, "script": [0.5]}),
    "vci_0.42": ({"monitor": "scripted", "save_top_k": -1, "filename": "{scripted:.4f}-{epoch}"},
                 {"max_epochs": 3, "val_check_interval": 0.42, "num_sanity_val_steps": 0}, {"samples": 48, "script": [0.5, 0.4, 0.3]}),
    "val_every_2_monitor_epoch": ({"monitor": "epoch", "save_top_k": -1, "filename": "{epoch}"},
                                  {"max_epochs": 5, "check_val_every_n_epoch": 2, "num_sanity_val_steps": 0}, {}),
    "nothing": ({"save_top_k": 0}, {"max_epochs": 2}, {}),
    "last_no_val_no_epoch_end": ({"save_last": True, "save_on_train_epoch_end": False}, {"max_epochs": 2, "limit_val_batches": 0}, {}),
    "last_only_when_saved": ({"monitor": "scripted", "filename": "best-{epoch}-{scripted:.2f}", "save_last": True, "save_top_k": 1,
                              "every_n_epochs": 1, "save_on_train_epoch_end": False}, {"max_epochs": 4}, {"script": [1.0, 1.1, 0.8, 1.3]}),
    "last_only_when_saved_link": ({"monitor": "scripted", "filename": "best-{epoch}-{scripted:.2f}", "save_last": "link", "save_top_k": 1,
                                   "every_n_epochs": 1, "save_on_train_epoch_end": False}, {"max_epochs": 4}, {"script": [1.0, 1.1, 0.8, 1.3]}),
    "all_no_monitor_last": ({"save_top_k": -1, "save_last": True}, {"max_epochs": 2}, {}),
    # test_model_checkpoint_score_and_ckpt: each epoch's file named by its score, holding the StepLR stepped for that epoch
    "score_and_ckpt": ({"monitor": "scripted", "save_top_k": -1, "filename": "{scripted:.4f}-{epoch}"}, {"max_epochs": 3},
                       {"script": [0.5, 0.3, 0.4], "scheduler": "step"}),
    # ..._val_check_interval: mid-epoch files hold the scheduler before the epoch's step
    "score_and_ckpt_vci_0.25": ({"monitor": "scripted", "save_top_k": -1, "filename": "{scripted:.4f}-{epoch}"},
                                {"max_epochs": 2, "val_check_interval": 0.25}, {"script": [0.5, 0.3], "scheduler": "step"}),
    # test_model_checkpoint_with_non_string_input: ModelCheckpoint's own directory, `{epoch}`
    "non_string_dirpath_none": ({"dirpath": None, "monitor": "train_loss", "filename": "{epoch}", "save_top_k": -1},
                                {"max_epochs": 2}, {}),
    # test_model_checkpoint_save_last (save_last="link", top_k -1 with a monitor)
    "link_all_monitor": ({"monitor": "scripted", "save_top_k": -1, "save_last": "link"}, {"max_epochs": 3}, {"script": SCRIPT}),
    # test_ckpt_every_n_train_steps: every_n_epochs=0 and `{step}`
    "steps_epochs_0": ({"filename": "{step}", "every_n_epochs": 0, "every_n_train_steps": 3, "save_top_k": -1}, {"max_epochs": 3}, {}),
    # test_model_checkpoint_train_time_interval (proxies: 0 s saves after every batch; a day only at the end, last.ckpt)
    "time_0_all": ({"train_time_interval_s": 0, "save_top_k": -1}, {"max_epochs": 2}, {}),
    "time_1_day_last": ({"train_time_interval_s": 86400, "save_last": True}, {"max_epochs": 2}, {}),
    # test_train_epoch_end_ckpt_with_no_validation: no validation batches, so saves at the training epochs' ends
    "no_val_vci_0.5": ({"save_top_k": -1}, {"max_epochs": 2, "val_check_interval": 0.5, "limit_val_batches": 0}, {}),
    # test_model_checkpoint_save_last_checkpoint_contents: last.ckpt holds epoch=2.ckpt's state
    "last_contents_top_3": ({"monitor": "scripted", "filename": "{epoch}", "save_top_k": 3, "save_last": True},
                            {"max_epochs": 3}, {"script": SCRIPT}),
    # test_callbacks_and_logger_not_called_with_fastdevrun: fast_dev_run saves nothing
    "fast_dev_run_4": ({}, {"fast_dev_run": 4}, {"samples": 32}),  # files [], best None, last None
    "fast_dev_run_4_every_step": ({"save_top_k": -1, "every_n_train_steps": 1}, {"fast_dev_run": 4}, {"samples": 32}),  # files []
}

# ModelCheckpoint arguments Lightning refuses: the start of its message.
REFUSED = {
    "steps_and_epochs": {"every_n_train_steps": 2, "every_n_epochs": 1},
    "top_k_without_monitor": {"save_top_k": 3},
    "negative_every_n_epochs": {"every_n_epochs": -1},
    "negative_every_n_train_steps": {"every_n_train_steps": -3},
    "negative_top_k": {"save_top_k": -3},
    "unknown_mode": {"mode": "unknown_option"},
    # test_invalid_trigger_combination: a time interval with another trigger; and what it accepts (message None)
    "time_and_epochs": {"train_time_interval_s": 60, "every_n_epochs": 2},
    "time_and_steps": {"train_time_interval_s": 60, "every_n_train_steps": 2},
    "epochs_3_steps_0": {"every_n_train_steps": 0, "every_n_epochs": 3},
    "steps_4_epochs_0": {"every_n_train_steps": 4, "every_n_epochs": 0},
    "time_with_zero_triggers": {"every_n_train_steps": 0, "every_n_epochs": 0, "train_time_interval_s": 60},
}

# Two fits into one directory: name: (ModelCheckpoint args, trainer args, model args). The second run's files are
# versioned (`-v1`), the first run's kept; what the second run reports is compared.
RERUNS = {
    "rerun_same_dir": ({"save_last": True}, {"max_epochs": 2}, {}),
    "rerun_same_dir_link": ({"save_last": "link"}, {"max_epochs": 2}, {}),
    # test_ckpt_version_after_rerun_new_trainer: best_k_models names the second run's own files
    "rerun_monitor_epoch": ({"monitor": "epoch", "save_top_k": -1, "filename": "{epoch}"}, {"max_epochs": 2}, {}),
    # test_save_last_versioning
    "rerun_top0_last": ({"save_top_k": 0, "save_last": True}, {"max_epochs": 2, "limit_val_batches": 0}, {}),
}

# A fit resumed from a file of an earlier one: name: (model args, (ModelCheckpoint args, trainer args) of the first
# fit, the same of the resumed fit, the file resumed from, the resumed fit's directory under the first's or None).
STEP_SAVES = {"filename": "{step}", "monitor": "step", "mode": "max", "save_last": True, "save_top_k": 2,
              "every_n_train_steps": 1}
THREE_STEPS = {"limit_train_batches": 3, "limit_val_batches": 0}
TOP_2_STEPS = {"monitor": "step", "mode": "max", "save_top_k": 2, "every_n_train_steps": 2}
RESUMES = {
    # The file resumed from is never removed.
    "resume_keeps_its_source": ({}, ({}, {"max_epochs": 2}), ({}, {"max_epochs": 4}), "epoch=1-step=8.ckpt", None),
    # test_checkpoint_repeated_strategy(_extended): refitting a finished run writes nothing
    "refit_finished_1": ({}, ({}, {"max_epochs": 1}), ({}, {"max_epochs": 1}), "epoch=0-step=4.ckpt", None),
    "resume_finished": ({}, ({"save_top_k": -1}, {"max_epochs": 2}), ({"save_top_k": -1}, {"max_epochs": 2}),
                        "epoch=1-step=8.ckpt", None),
    # test_resume_training_preserves_old_ckpt_last: a resume into a new directory leaves the old one as it was
    "resume_new_dir_keeps_old_last": ({}, (STEP_SAVES, {"max_epochs": 1, **THREE_STEPS}),
                                      (STEP_SAVES, {"max_epochs": 2, **THREE_STEPS}), "step=2.ckpt", "new"),
    # test_resume_and_old_checkpoint_files_remain: in the same directory, the source kept and older top-k files
    # removed; in another, the first directory untouched and the state started afresh
    "resume_same_dir_old_files": ({"samples": 40}, (TOP_2_STEPS, {"max_steps": 5, "limit_val_batches": 0}),
                                  (TOP_2_STEPS, {"max_steps": 8, "limit_val_batches": 0}), "epoch=0-step=4.ckpt", None),
    "resume_other_dir_old_files": ({"samples": 40}, (TOP_2_STEPS, {"max_steps": 5, "limit_val_batches": 0}),
                                   (TOP_2_STEPS, {"max_steps": 8, "limit_val_batches": 0}), "epoch=0-step=4.ckpt",
                                   "second"),
}


def _script(values):
    return [float(v) for v in values]


def _score(v):
    """A score as JSON can hold it: a number, or "inf", "-inf", "nan" (json.dump would write
    Infinity/NaN, which JSON readers refuse)."""
    v = float(v)
    return v if math.isfinite(v) else str(v)


def contents(dirpath):
    """Per checkpoint file (links left out): its epoch and global step and the ModelCheckpoint
    state it holds, paths as file names, scores as `_score` writes them, "" as None."""
    out = {}
    for f in sorted(os.listdir(dirpath)):
        path = os.path.join(dirpath, f)
        if os.path.islink(path):
            continue
        c = torch.load(path, weights_only=False)
        states = [v for k, v in c["callbacks"].items() if k.startswith("ModelCheckpoint")]
        base = lambda p: os.path.basename(p) if p else None
        num = lambda v: None if v is None else _score(v)
        mc = {}
        if states:
            s = states[0]
            mc = {"best_model_path": base(s["best_model_path"]), "best_model_score": num(s["best_model_score"]),
                  "current_score": num(s["current_score"]), "last_model_path": base(s["last_model_path"]),
                  "best_k_models": {base(p): _score(v) for p, v in sorted(s["best_k_models"].items())},
                  "kth_best_model_path": base(s["kth_best_model_path"]), "kth_value": num(s["kth_value"])}
        # Where each scheduler was when the file was written (its `last_epoch`).
        schedulers = [sch["last_epoch"] for sch in c.get("lr_schedulers", [])]
        out[f] = {"epoch": c["epoch"], "global_step": c["global_step"], "model_checkpoint": mc, "schedulers": schedulers}
    return out


class Recording(Logger):
    """A logger that keeps what ModelCheckpoint hands `after_save_checkpoint` at each call, files
    by their names (as lthost's loggers get them)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    @property
    def name(self):
        return "recording"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def after_save_checkpoint(self, checkpoint_callback):
        cb = checkpoint_callback
        base = lambda p: os.path.basename(p) if p else ""
        self.calls.append({"best_model_path": base(cb.best_model_path),
                           "best_model_score": None if cb.best_model_score is None else _score(cb.best_model_score),
                           "last_model_path": base(cb.last_model_path),
                           "best_k_models": {base(p): _score(v) for p, v in sorted(cb.best_k_models.items())}})


def made(ckpt_args, **kwargs):
    """ModelCheckpoint with lthost's `train_time_interval_s` (seconds) as Lightning's timedelta."""
    args = dict(ckpt_args)
    if "train_time_interval_s" in args:
        args["train_time_interval"] = timedelta(seconds=args.pop("train_time_interval_s"))
    return ModelCheckpoint(**args, **kwargs)


def fit(ckpt_args, trainer_args, model_args, dirpath, ckpt_path=None):
    torch.manual_seed(0)
    margs = dict(model_args)
    if "script" in margs:
        margs["script"] = _script(margs["script"])
    model = Recorder([], **margs)
    # `"dirpath": None`: ModelCheckpoint's own default, `<default_root_dir>/checkpoints` without a logger
    default_dir = "dirpath" in ckpt_args and ckpt_args["dirpath"] is None
    cargs = {k: v for k, v in ckpt_args.items() if k != "dirpath"}
    mc = made(cargs) if default_dir else made(cargs, dirpath=dirpath)
    # With the directory given, a logger changes nothing ModelCheckpoint decides: it records
    # what the loggers are told after each save.
    recording = None if default_dir else Recording()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=recording or False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=dirpath, callbacks=[mc], **trainer_args)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        trainer.fit(model, ckpt_path=ckpt_path)
    # What ModelCheckpoint warned about (a monitor not logged yet).
    warned = [str(w.message) for w in said if str(w.message).startswith("`ModelCheckpoint(")]
    if default_dir:
        dirpath = os.path.join(dirpath, "checkpoints")
    name = lambda p: os.path.basename(p) if p else None
    return {
        "contents": contents(dirpath),
        "files": sorted(os.listdir(dirpath)),
        "state_key": mc.state_key,
        "links": {f: os.readlink(os.path.join(dirpath, f)) for f in sorted(os.listdir(dirpath)) if os.path.islink(os.path.join(dirpath, f))},
        "best_model_path": name(mc.best_model_path),
        "best_model_score": None if mc.best_model_score is None else _score(mc.best_model_score),
        "last_model_path": name(mc.last_model_path),
        "best_k_models": {name(p): _score(v) for p, v in sorted(mc.best_k_models.items())},
        **({"after_save_checkpoint": recording.calls} if recording is not None else {}),
        "warned": warned,
    }


def main(path):
    out = {"lightning": L.__version__, "cases": {}, "refused": {}}
    for name, (cargs, targs, margs) in CASES.items():
        with tempfile.TemporaryDirectory() as d:
            got = fit(cargs, targs, margs, d)
        out["cases"][name] = {"checkpoint": cargs, "trainer": targs, "model": margs, **got}
    for name, (cargs, targs, margs) in RERUNS.items():
        with tempfile.TemporaryDirectory() as d:
            fit(cargs, targs, margs, d)
            got = fit(cargs, targs, margs, d)
        out["cases"][name] = {"checkpoint": cargs, "trainer": targs, "model": margs, "runs": 2, **got}
    for name, (margs, (cargs1, targs1), (cargs, targs), source, subdir) in RESUMES.items():
        with tempfile.TemporaryDirectory() as d:
            fit(cargs1, targs1, margs, d)
            second = os.path.join(d, subdir) if subdir else d
            got = fit(cargs, targs, margs, second, ckpt_path=os.path.join(d, source))
            first_files = sorted(f for f in os.listdir(d) if f != subdir)
        out["cases"][name] = {"checkpoint": cargs, "trainer": targs, "model": margs, "resume_from": source,
                              "first": {"checkpoint": cargs1, "trainer": targs1}, "second_dir": subdir,
                              "first_files": first_files, **got}
    for name, cargs in REFUSED.items():
        try:
            made(cargs)
            out["refused"][name] = {"checkpoint": cargs, "message": None}
        except Exception as e:  # noqa: BLE001
            out["refused"][name] = {"checkpoint": cargs, "message": str(e)}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: lightning {L.__version__}, {len(out['cases'])} cases")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/checkpoint.json")
