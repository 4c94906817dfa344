"""Built-in callbacks from Lightning itself: what LearningRateMonitor writes to the CSV
logger, how GradientAccumulationScheduler changes the optimizer steps, and what the
learning rate finder (`Tuner.lr_find`) records and suggests on the parity RNN.
tests/e2e/callbacks.rs runs lthost with the same settings and compares.

    .venv/bin/python tests/reference/callbacks_reference.py tests/reference/callbacks.json
"""

import csv
import json
import os
import sys
import tempfile
import warnings

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning.pytorch.callbacks import GradientAccumulationScheduler, LearningRateMonitor
from lightning.pytorch.tuner import Tuner

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lightning_reference import Recorder  # noqa: E402
from parity_reference import ParityModuleRNN, average_dataset  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


def fit(callbacks, trainer_args, model_args, log_every_n_steps=50):
    """Fits the hook-recording model; returns the counts and the CSV rows."""
    calls = []
    torch.manual_seed(0)
    model = Recorder(calls, **model_args)
    with tempfile.TemporaryDirectory() as root:
        logger = L.pytorch.loggers.CSVLogger(root, name="lightning_logs")
        trainer = L.Trainer(
            accelerator="cpu", devices=1, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=root, callbacks=callbacks,
            log_every_n_steps=log_every_n_steps, num_sanity_val_steps=0, **trainer_args,
        )
        trainer.fit(model)
        with open(os.path.join(trainer.logger.log_dir, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
    lr_rows = [{"step": int(r["step"]), **{k: float(v) for k, v in r.items() if k.startswith("lr-") and v != ""}} for r in rows]
    return {
        "global_step": trainer.global_step,
        "on_before_optimizer_step": sum(1 for c in calls if c == "on_before_optimizer_step"),
        "on_before_zero_grad": sum(1 for c in calls if c == "on_before_zero_grad"),
        "lr_rows": [r for r in lr_rows if len(r) > 1],
    }


LR_MONITOR = {
    # name: (LearningRateMonitor args, trainer args, model args, log_every_n_steps)
    "lrmon_default_epoch_scheduler": ({}, {"max_epochs": 3}, {"scheduler": "step"}, 2),
    "lrmon_step_momentum": ({"logging_interval": "step", "log_momentum": True}, {"max_epochs": 2}, {}, 2),
    "lrmon_epoch": ({"logging_interval": "epoch"}, {"max_epochs": 3}, {"scheduler": "step"}, 1),
    "lrmon_default_no_scheduler": ({}, {"max_epochs": 2}, {}, 3),
}

ACCUMULATION = {
    # name: (scheduling, trainer args, model args)
    "accum_sched_0_1_2": ({0: 1, 1: 2, 2: 3}, {"max_epochs": 3}, {"samples": 32}),
    "accum_sched_from_1": ({1: 4}, {"max_epochs": 3}, {"samples": 40}),
}


def lr_find(seed, trainer_args=None, optimizer="adam", **kwargs):
    torch.manual_seed(seed)

    class Parity(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = ParityModuleRNN()
            self.lr = 0.02

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            if optimizer == "adagrad":
                return torch.optim.Adagrad(self.parameters(), lr=self.lr)
            return torch.optim.Adam(self.parameters(), lr=self.lr)

    model = Parity()
    x, y = average_dataset()
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=root, **(trainer_args or {}))
        finder = Tuner(trainer).lr_find(model, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=30), **kwargs)
    return {"args": kwargs, "trainer": trainer_args or {}, "optimizer": optimizer, "lr": finder.results["lr"], "loss": finder.results["loss"], "suggestion": finder.suggestion()}


def lr_find_recorder(model_args, **kwargs):
    """`Tuner.lr_find` on the hook-recording model (SGD, 4 batches an epoch), seeded as `lthost lr-find --seed 0`."""
    torch.manual_seed(0)
    model = Recorder([], **model_args)
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=root)
        finder = Tuner(trainer).lr_find(model, update_attr=False, **kwargs)
    loss = [v if v == v else "nan" for v in finder.results["loss"]]
    return {"args": kwargs, "model": model_args, "lr": finder.results["lr"], "loss": loss, "suggestion": finder.suggestion()}


def suggestions():
    """Lightning's `_LRFinder.suggestion` on literal results (tests_pytorch/tuner/test_lr_finder.py:
    test_suggestion_not_enough_finite_points, test_suggestion_with_non_finite_values, test_gradient_correctness)."""
    import math
    from lightning.pytorch.tuner.lr_finder import _LRFinder
    nan, inf = float("nan"), float("inf")
    cases = [([], 0, 0), ([], 10, 1), ([0, 1, 2], 0, 2), ([0, 1, 2], 1, 1), ([0, 1, 2], 0, 1), ([0, 1, 2, 3], 1, 1),
             ([nan, 1, inf, 3, 4, 5, 6, 7, 8, 9, 10], 0, 1), ([nan, 1, inf, 3, 4, 5, 6, 7, 8, 9, 10], 4, 1),
             ([0, 3, 1, 2], 0, 0), ([5.0, 4.0, 1e39, 2.0, 0.5], 0, 1)]
    out = []
    for losses, begin, end in cases:
        out.append({"lr": [float(i) for i in range(len(losses))], "loss": [float(v) for v in losses], "skip_begin": begin,
                    "skip_end": end})
    # the steepest descent of sin over [0, 2pi] is at pi
    xs = torch.linspace(0, 2 * math.pi, steps=1000).tolist()
    out.append({"lr": xs, "loss": [math.sin(x) for x in xs], "skip_begin": 2, "skip_end": 2})
    # a NaN over the last loss of a real search changes nothing (skip_end drops it)
    ys = [math.cos(x) + 0.1 * x for x in xs[:120]]
    out.append({"lr": xs[:120], "loss": ys[:-1] + [nan], "skip_begin": 10, "skip_end": 1})
    # test_suggestion_parameters_work: skip_begin 10 and 70 on one search's results give different
    # suggestions (a steep drop at 40, a gentler one at 85)
    zs = [float(i) for i in range(100)]
    drops = [1 - math.tanh((i - 40) / 6) - 0.3 * math.tanh((i - 85) / 4) for i in range(100)]
    for begin in (10, 70):
        out.append({"lr": zs, "loss": drops, "skip_begin": begin, "skip_end": 1})
    for case in out:
        finder = _LRFinder(mode="linear", lr_min=1e-8, lr_max=1.0, num_training=max(1, len(case["lr"])))
        finder.results = {"lr": case["lr"], "loss": case["loss"]}
        case["suggestion"] = finder.suggestion(skip_begin=case["skip_begin"], skip_end=case["skip_end"])
        case["index"] = finder._optimal_idx
        # JSON has no NaN or inf: those losses as strings ("nan", "inf"), which Rust's f64 parser reads
        case["loss"] = [v if math.isfinite(v) else repr(v) for v in case["loss"]]
    return out


def fast_dev_run_skips():
    """The Tuner's searches under fast_dev_run: each returns None with a warning (their texts)."""
    out = {}
    for search in ("lr_find", "scale_batch_size"):
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as root, warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                                fast_dev_run=True)
            got = getattr(Tuner(trainer), search)(Recorder([]))
        out[search] = {"returned": got, "warned": [str(w.message) for w in said if "fast_dev_run" in str(w.message)]}
    return out


def main(path):
    out = {"lightning": L.__version__, "torch": torch.__version__, "lr_monitor": {}, "accumulation": {}, "lr_find": {}}
    for name, (args, targs, margs, every) in LR_MONITOR.items():
        out["lr_monitor"][name] = {"args": args, "trainer": targs, "model": margs, "log_every_n_steps": every,
                                   **fit([LearningRateMonitor(**args)], targs, margs, every)}
    for name, (sched, targs, margs) in ACCUMULATION.items():
        out["accumulation"][name] = {"scheduling": {str(k): v for k, v in sched.items()}, "trainer": targs, "model": margs,
                                     **fit([GradientAccumulationScheduler(sched)], targs, margs)}
    out["lr_find"]["exponential"] = lr_find(0)
    out["lr_find"]["linear_40"] = lr_find(1, mode="linear", num_training=40, min_lr=1e-4, max_lr=0.5)
    # with accumulation: one point per optimizer step, the loss as backward got it (/ 2)
    out["lr_find"]["accumulate_2"] = lr_find(2, {"accumulate_grad_batches": 2}, num_training=25)
    # early_stop_threshold None: every step; 0: stops at the second point (docs/lightning-tests/tuner.md difference 3)
    out["lr_find"]["no_early_stop"] = lr_find(3, num_training=60, early_stop_threshold=None)
    out["lr_find"]["threshold_0"] = lr_find(4, num_training=30, early_stop_threshold=0)
    # max_time does not cut the search (the Timer is swapped out with every other callback; difference 6)
    out["lr_find"]["max_time_0"] = lr_find(5, {"max_time": "00:00:00:00"}, num_training=20)
    # Lightning's checks only (difference 2): bounds in either order sweep down, a single step, the mode in any case
    out["lr_find"]["downward"] = lr_find(6, num_training=20, min_lr=0.5, max_lr=1e-4, early_stop_threshold=None)
    out["lr_find"]["one_step"] = lr_find(7, num_training=1)
    out["lr_find"]["mode_case"] = lr_find(8, mode="Linear", num_training=20, min_lr=1e-3, max_lr=0.1)
    # tuner.md row 6 (test_call_to_trainer_method): Adagrad, linear mode
    out["lr_find"]["adagrad_linear"] = lr_find(9, optimizer="adagrad", mode="linear", num_training=40, min_lr=1e-4,
                                               max_lr=0.5)
    # tuner.md row 20 (test_lr_finder_training_step_none_output): training_step returns None at global
    # steps 5, 12 and 17: NaN there, and a suggestion from the finite points
    out["lr_find"]["none_output"] = lr_find_recorder({"none_at": [5, 12, 17]}, num_training=20,
                                                     early_stop_threshold=None)
    out["suggestions"] = suggestions()
    out["fast_dev_run_skips"] = fast_dev_run_skips()
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: lightning {L.__version__}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/callbacks.json")
