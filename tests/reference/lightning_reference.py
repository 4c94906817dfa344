"""The Trainer contract from Lightning itself (the `lightning` package from PyPI): the hook
sequence of fit/validate/test/predict, and the counts (steps, batches, validation runs,
epochs) each loop flag produces. tests/e2e/loops.rs runs lthost's hook-recorder plugin with
the same settings and compares.

Hooks are recorded when called (not when they return), callbacks before the module, and
only the hooks lthost delivers to a plugin: the host itself does transfer_batch_to_device,
backward, optimizer_step, optimizer_zero_grad, clipping, lr_scheduler_step and the
*_dataloader calls, so those are not recorded here either.

    .venv/bin/python tests/reference/lightning_reference.py tests/reference/lightning.json
"""

import json
import os
import sys
import tempfile
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning as L

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

MODULE_HOOKS = [
    "setup", "teardown", "configure_model", "on_fit_start", "on_fit_end", "on_train_start", "on_train_end",
    "on_train_epoch_start", "on_train_epoch_end", "on_train_batch_start", "on_train_batch_end",
    "on_validation_start", "on_validation_end", "on_validation_epoch_start", "on_validation_epoch_end",
    "on_validation_batch_start", "on_validation_batch_end", "on_validation_model_eval", "on_validation_model_train",
    "on_validation_model_zero_grad", "on_test_start", "on_test_end", "on_test_epoch_start", "on_test_epoch_end",
    "on_test_batch_start", "on_test_batch_end", "on_test_model_eval", "on_test_model_train", "on_predict_start",
    "on_predict_end", "on_predict_epoch_start", "on_predict_epoch_end", "on_predict_batch_start",
    "on_predict_batch_end", "on_predict_model_eval", "on_before_batch_transfer", "on_after_batch_transfer",
    "on_before_zero_grad", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
]
CALLBACK_HOOKS = [
    "setup", "teardown", "on_fit_start", "on_fit_end", "on_sanity_check_start", "on_sanity_check_end",
    "on_train_start", "on_train_end", "on_train_epoch_start", "on_train_epoch_end", "on_train_batch_start",
    "on_train_batch_end", "on_validation_start", "on_validation_end", "on_validation_epoch_start",
    "on_validation_epoch_end", "on_validation_batch_start", "on_validation_batch_end", "on_test_start",
    "on_test_end", "on_test_epoch_start", "on_test_epoch_end", "on_test_batch_start", "on_test_batch_end",
    "on_predict_start", "on_predict_end", "on_predict_epoch_start", "on_predict_epoch_end",
    "on_predict_batch_start", "on_predict_batch_end", "on_before_zero_grad", "on_before_backward",
    "on_after_backward", "on_before_optimizer_step",
]


class Recorder(L.LightningModule):
    def __init__(self, calls, samples=16, batch_size=4, skip_at=None, script=None, scheduler=None, forked=False, val_on_step=False, log_step_epoch=False, script_at="validation_step", none_even=False, none_at=None, log_in=None):
        super().__init__()
        self.log_in = log_in  # a hook where the module calls `self.log("from_hook", 1.0)`
        self.none_even = none_even  # training_step returns None at even batch indices (after logging)
        self.none_at = none_at or []  # ... and at these global steps
        self.forked, self.val_on_step, self.log_step_epoch = forked, val_on_step, log_step_epoch
        self.lrs = []  # the learning rate each training step ran with
        self.calls, self.samples, self.batch_size, self.skip_at = calls, samples, batch_size, skip_at
        self.scheduler = scheduler
        self.script = script or []
        self.script_at = script_at  # where `scripted` is logged: validation_step or on_train_epoch_end
        self.calls.append("configure")
        self.layer = nn.Linear(4, 1)

    def _data(self):
        x = torch.randn(self.samples, 4)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True) * 0.5), batch_size=self.batch_size)

    def train_dataloader(self):
        return self._data()

    def val_dataloader(self):
        return self._data()

    def test_dataloader(self):
        return self._data()

    def predict_dataloader(self):
        return self._data()

    def configure_optimizers(self):
        self.calls.append("configure_optimizers")
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        if self.scheduler == "step":
            return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5), "interval": "epoch"}}
        return opt

    def training_step(self, batch, batch_idx):
        self.calls.append("training_step")
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        x, y = batch
        loss = F.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        if self.log_step_epoch:
            self.log("step", float(100 + self.global_step))
            self.log("epoch", 7.0)
        if (self.none_even and batch_idx % 2 == 0) or self.global_step in self.none_at:
            return None
        return loss

    def validation_step(self, batch, batch_idx):
        self.calls.append("validation_step")
        x, y = batch
        self.log("val_loss", F.mse_loss(self.layer(x), y), **({"on_step": True} if self.val_on_step else {}))
        if self.script_at == "validation_step" and self.current_epoch < len(self.script):
            self.log("scripted", float(self.script[self.current_epoch]), **({"on_step": True, "on_epoch": True} if self.forked else {}))

    def test_step(self, batch, batch_idx):
        self.calls.append("test_step")
        x, y = batch
        self.log("test_loss", F.mse_loss(self.layer(x), y))

    def predict_step(self, batch, batch_idx):
        self.calls.append("predict_step")
        return self.layer(batch[0])


def _module_hook(name):
    def hook(self, *args, **kwargs):
        self.calls.append(name)
        out = getattr(super(Recorder, self), name)(*args, **kwargs)
        if name == self.log_in:
            self.log("from_hook", 1.0)
        if name == "on_train_batch_start" and self.skip_at is not None and args[1] == self.skip_at:
            return -1
        if name == "on_train_epoch_end" and self.script_at == "on_train_epoch_end" and self.current_epoch < len(self.script):
            self.log("scripted", float(self.script[self.current_epoch]))
        return out

    return hook


for _name in MODULE_HOOKS:
    setattr(Recorder, _name, _module_hook(_name))


class RecordingCallback(L.Callback):
    def __init__(self, calls):
        self.calls = calls


def _callback_hook(name):
    def hook(self, *args, **kwargs):
        self.calls.append(f"Callback.{name}")

    return hook


for _name in CALLBACK_HOOKS:
    setattr(RecordingCallback, _name, _callback_hook(_name))


def run(entry, trainer_args, model_args=None, log_every_n_steps=None, early_stopping=None):
    calls = []
    torch.manual_seed(0)
    model = Recorder(calls, **(model_args or {}))
    es = [L.pytorch.callbacks.EarlyStopping(**early_stopping)] if early_stopping else []
    with tempfile.TemporaryDirectory() as root:
        logger = L.pytorch.loggers.CSVLogger(root, name="lightning_logs") if log_every_n_steps else False
        trainer = L.Trainer(
            accelerator="cpu", devices=1, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=root,
            callbacks=[RecordingCallback(calls)] + es,
            log_every_n_steps=log_every_n_steps or 50, **trainer_args,
        )
        getattr(trainer, entry)(model)
        train_log_steps, val_rows, train_rows = [], [], []
        if log_every_n_steps:
            import csv
            with open(os.path.join(trainer.logger.log_dir, "metrics.csv")) as f:
                rows = list(csv.DictReader(f))
            train_log_steps = [int(r["step"]) for r in rows if r.get("train_loss")]
            train_rows = [[int(r["step"]), float(r["epoch"]) if r.get("epoch") else None] for r in rows if r.get("train_loss")]
            # The rows validation wrote: their step, the val_loss columns they fill, and
            # whether they carry the epoch.
            val_rows = [[int(r["step"]), sorted(k for k, v in r.items() if k.startswith("val_loss") and v), bool(r.get("epoch"))]
                        for r in rows if any(k.startswith("val_loss") and v for k, v in r.items())]
    count = lambda name: sum(1 for c in calls if c == name)
    return {
        "calls": calls,
        "training_step": count("training_step"),
        "validation_step": count("validation_step"),
        "val_runs": count("on_validation_model_zero_grad"),
        "sanity": count("Callback.on_sanity_check_start"),
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "on_before_zero_grad": count("on_before_zero_grad"),
        "on_before_optimizer_step": count("on_before_optimizer_step"),
        "on_before_backward": count("on_before_backward"),
        "on_train_epoch_end": count("on_train_epoch_end"),
        "train_log_steps": train_log_steps,
        "val_rows": val_rows,
        "lrs": model.lrs,
        "train_rows": train_rows,
        "scripted_callback_metrics": sorted(k for k in trainer.callback_metrics if k.startswith("scripted")),
        "stopped_epoch": es[0].stopped_epoch if es else None,
        "stopping_reason": es[0].stopping_reason.name if es else None,
        "stopping_reason_message": es[0].stopping_reason_message if es else None,
    }


# name: (entry, trainer args, model args, log_every_n_steps). lthost's TOML/CLI names are
# the same as the Trainer's arguments.
CASES = {
    "hooks_fit": ("fit", {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 2}, None, None),
    "hooks_validate": ("validate", {"limit_val_batches": 2}, None, None),
    "hooks_test": ("test", {"limit_test_batches": 2}, None, None),
    "hooks_predict": ("predict", {"limit_predict_batches": 2}, None, None),
    "validate_limit_0": ("validate", {"limit_val_batches": 0}, None, None),
    "validate_overfit_1": ("validate", {"overfit_batches": 1}, None, None),
    "limit_train_3": ("fit", {"max_epochs": 2, "limit_train_batches": 3}, None, None),
    "limit_fractions": ("fit", {"max_epochs": 2, "limit_train_batches": 0.5, "limit_val_batches": 0.25}, None, None),
    "limit_val_0": ("fit", {"max_epochs": 1, "limit_val_batches": 0}, None, None),
    "val_check_0.25": ("fit", {"max_epochs": 1, "val_check_interval": 0.25}, {"samples": 32}, None),
    "val_check_0.3": ("fit", {"max_epochs": 1, "val_check_interval": 0.3}, {"samples": 40}, None),
    "val_check_3": ("fit", {"max_epochs": 1, "val_check_interval": 3}, {"samples": 32}, None),
    "check_val_every_2": ("fit", {"max_epochs": 4, "check_val_every_n_epoch": 2}, None, None),
    # by wall-clock time: 0 s validates after every batch, a day never
    "val_check_time_0": ("fit", {"max_epochs": 1, "val_check_interval": "00:00:00:00"}, None, None),
    "val_check_time_1_day": ("fit", {"max_epochs": 2, "val_check_interval": "01:00:00:00"}, None, None),
    "check_val_none_5": ("fit", {"max_epochs": 4, "check_val_every_n_epoch": None, "val_check_interval": 5}, None, None),
    "sanity_default": ("fit", {"max_epochs": 1, "limit_train_batches": 1}, None, None),
    "sanity_all": ("fit", {"max_epochs": 1, "limit_train_batches": 1, "num_sanity_val_steps": -1}, None, None),
    "sanity_0": ("fit", {"max_epochs": 1, "limit_train_batches": 1, "num_sanity_val_steps": 0}, None, None),
    "fast_dev_run": ("fit", {"max_epochs": 5, "fast_dev_run": True}, None, None),
    "fast_dev_run_3": ("fit", {"fast_dev_run": 3}, None, None),
    "overfit_2_two_epochs": ("fit", {"max_epochs": 2, "overfit_batches": 2, "num_sanity_val_steps": 0}, None, None),
    "accumulate_3": ("fit", {"max_epochs": 2, "accumulate_grad_batches": 3}, {"samples": 32}, None),
    "max_steps_5": ("fit", {"max_steps": 5}, None, None),
    "max_epochs_-1_max_steps_9": ("fit", {"max_epochs": -1, "max_steps": 9}, None, None),
    "max_time_0": ("fit", {"max_time": "00:00:00:00"}, None, None),
    "max_time_0_min_epochs_2": ("fit", {"max_time": "00:00:00:00", "min_epochs": 2}, None, None),
    "max_time_0_min_steps_6": ("fit", {"max_time": "00:00:00:00", "min_steps": 6}, None, None),
    "skip_at_1": ("fit", {"max_epochs": 3}, {"skip_at": 1}, None),
    # training_step returns None at even batches: the optimizer still steps (Lightning's closure
    # returns None, backward is skipped); with accumulation too (loops.md row 37)
    "none_even": ("fit", {"max_epochs": 2}, {"none_even": True}, None),
    "none_even_accumulate_2": ("fit", {"max_epochs": 2, "accumulate_grad_batches": 2}, {"none_even": True}, None),
    # test_train_step_no_return (loops.md row 36): None from every training_step under fast_dev_run 2; validation runs
    "none_all_fast_dev_run_2": ("fit", {"fast_dev_run": 2}, {"none_at": [0, 1]}, None),
    # -1 from on_train_batch_start ends the epoch as its last batch: the epoch's schedulers step
    "skip_at_1_step_lr": ("fit", {"max_epochs": 3}, {"skip_at": 1, "scheduler": "step"}, None),
    "log_every_2": ("fit", {"max_epochs": 2}, None, 2),
    "val_on_step": ("fit", {"max_epochs": 2}, {"val_on_step": True}, 1),
    "logged_step_and_epoch": ("fit", {"max_epochs": 1}, {"log_step_epoch": True}, 2),
    # Lightning's tests_pytorch/trainer/flags/, ported (docs/lightning-tests/trainer_flags.md).
    # test_val_check_interval (12 batches)
    **{f"vci_third_{e}_epochs": ("fit", {"max_epochs": e, "val_check_interval": 1 / 3}, {"samples": 48}, None) for e in (1, 2, 3)},  # 12/38/3/1/12/1, 24/74/6/1/24/2, 36/110/9/1/36/3
    "vci_quarter_3_epochs": ("fit", {"max_epochs": 3, "val_check_interval": 0.25}, {"samples": 48}, None),  # 36/146/12/1/36/3
    # test_val_check_interval_info_message: int 1 is every batch, 1.0 every epoch
    "vci_int_1": ("fit", {"max_epochs": 1, "val_check_interval": 1}, None, None),  # 4/18/4/1/4/1
    "vci_float_1.0": ("fit", {"max_epochs": 1, "val_check_interval": 1.0}, None, None),  # 4/6/1/1/4/1
    # test_validation_check_interval_exceed_data_length_correct (4 batches of 1, batches counted across epochs)
    "vci_3_across_epochs": ("fit", {"max_steps": 12, "val_check_interval": 3, "check_val_every_n_epoch": None, "num_sanity_val_steps": 0,
                                    "limit_val_batches": 1}, {"samples": 4, "batch_size": 1}, None),  # 12/4/4/0/12/3
    "vci_3_across_epochs_accumulate_2": ("fit", {"max_steps": 6, "val_check_interval": 3, "check_val_every_n_epoch": None, "num_sanity_val_steps": 0,
                                                 "limit_val_batches": 1, "accumulate_grad_batches": 2}, {"samples": 4, "batch_size": 1}, None),  # 12/4/2/0/6/3
    # not in the test file: on_validation_model_zero_grad is skipped for a validation inside an accumulation window
    "accumulate_2_vci_3": ("fit", {"max_epochs": 1, "accumulate_grad_batches": 2, "val_check_interval": 3}, {"samples": 32}, None),  # 8/18/1/1/4/1 (2 validations)
    # test_val_check_interval_float_with_none_check_val_every_n_epoch: None with vci unset is accepted (difference 2)
    "check_val_none_default_vci": ("fit", {"max_epochs": 3, "check_val_every_n_epoch": None}, None, None),  # 12/14/3/1/12/3
    # test_time_and_epoch_gated_val_check (proxies: 0 s, every batch of the gated epochs)
    "val_check_time_0_every_2": ("fit", {"max_epochs": 4, "val_check_interval": "00:00:00:00", "check_val_every_n_epoch": 2}, None, None),  # 16/34/8/1/16/4
    "val_check_time_0_none": ("fit", {"max_epochs": 2, "val_check_interval": "00:00:00:00", "check_val_every_n_epoch": None}, None, None),  # 8/34/8/1/8/2
    # test_check_val_every_n_epoch, test_check_val_every_n_epoch_with_max_steps
    **{f"cven_2_{e}_epochs": ("fit", {"max_epochs": e, "check_val_every_n_epoch": 2, "num_sanity_val_steps": 0, "limit_val_batches": 2}, None, None)
       for e in (1, 4, 5)},  # 4/0/0/0/4/1, 16/4/2/0/16/4, 20/4/2/0/20/5
    "cven_3_max_steps_8": ("fit", {"max_steps": 8, "check_val_every_n_epoch": 3, "num_sanity_val_steps": 0}, {"samples": 2, "batch_size": 1}, None),  # 8/2/1/0/8/4
    # test_num_dataloader_batches, test_eval_limit_batches (12 batches: 0.1 -> 1, 10 -> 10)
    "limit_100": ("fit", {"max_epochs": 1, "limit_train_batches": 100, "limit_val_batches": 100}, None, None),  # 4/6/1/1/4/1
    "limit_7": ("fit", {"max_epochs": 1, "limit_train_batches": 7, "limit_val_batches": 7}, {"samples": 48}, None),  # 7/9/1/1/7/1
    **{f"hooks_{e}_limit_{v}": (e, {f"limit_{k}_batches": v}, {"samples": 48}, None)
       for e, k in (("validate", "val"), ("test", "test"), ("predict", "predict")) for v in (0.1, 10)},  # 1 or 10 steps (23/86, 23/86, 22/85 calls)
    # test_callbacks_and_logger_not_called_with_fastdevrun
    "fast_dev_run_4_vci_2": ("fit", {"fast_dev_run": 4, "val_check_interval": 2}, {"samples": 32}, None),  # 4/4/1/0/4/1
    "hooks_test_fast_dev_run_4": ("test", {"fast_dev_run": 4}, {"samples": 32}, None),  # 4 test steps (44 calls)
    # test_overfit_basic (10 batches; validation takes the same limit), test_overfit_batch_limits_eval
    **{f"overfit_{v}": ("fit", {"max_epochs": 1, "overfit_batches": v}, {"samples": 40}, None) for v in (1, 2, 0.1, 0.25, 1.0)},
    # 1/2/1/1/1/1, 2/4/1/1/2/1, 1/2/1/1/1/1, 2/4/1/1/2/1, 10/12/1/1/10/1
    "validate_overfit_0.25": ("validate", {"overfit_batches": 0.25}, {"samples": 40}, None),  # 2 validation steps (30 calls)
    "hooks_test_overfit_1": ("test", {"overfit_batches": 1}, None, None),  # 4 test steps: not limited (44 calls)
    "hooks_predict_overfit_1": ("predict", {"overfit_batches": 1}, None, None),  # 4 predict steps (43 calls)
    # row 17 (test_overfit_basic): overfit 1, 0.1, 0.25 on 10 batches: 1, 1, 2 training batches, validation alike
    **{f"overfit_{o}_no_sanity": ("fit", {"max_epochs": 1, "overfit_batches": o, "num_sanity_val_steps": 0}, {"samples": 40},
                                  None) for o in (1, 0.1, 0.25)},
    # Lightning's tests_pytorch/loops/, ported (docs/lightning-tests/loops.md): -1 from on_train_batch_start
    # (test_training_loop.py), accumulation with in-epoch validation and limit_val_batches 0 (test_loops.py)
    "skip_at_5_limit_10": ("fit", {"max_epochs": 2, "limit_train_batches": 10}, {"samples": 48, "skip_at": 5}, None),
    "skip_at_12_limit_10": ("fit", {"max_epochs": 4, "limit_train_batches": 10}, {"samples": 48, "skip_at": 12}, None),
    "skip_at_1_accumulate_2": ("fit", {"max_epochs": 2, "accumulate_grad_batches": 2}, {"skip_at": 1}, None),
    "skip_at_3_vci_0.5": ("fit", {"max_epochs": 2, "val_check_interval": 0.5}, {"skip_at": 3}, None),
    "accumulate_3_vci_2": ("fit", {"max_epochs": 1, "limit_train_batches": 6, "limit_val_batches": 1, "accumulate_grad_batches": 3,
                                   "val_check_interval": 2, "num_sanity_val_steps": 0}, {"samples": 24}, None),
    **{f"limit_val_{v}_vci_10": ("fit", {"max_epochs": 1, "limit_train_batches": 5, "val_check_interval": 10, "limit_val_batches": v},
                                 {"samples": 20}, None) for v in (0, 0.0)},
}

SCRIPT = [1.0, 0.9, 0.88, 0.87, 0.7, 0.69, 0.68, 0.67, 0.66, 0.65, 0.64, 0.63]
# name: (trainer args, model args, EarlyStopping args)
EARLY_STOPPING = {
    "es_patience_2_delta": ({"max_epochs": 12}, {"script": SCRIPT}, {"monitor": "scripted", "patience": 2, "min_delta": 0.05}),
    "es_patience_3": ({"max_epochs": 12}, {"script": SCRIPT}, {"monitor": "scripted", "patience": 3}),
    "es_threshold": ({"max_epochs": 12}, {"script": SCRIPT}, {"monitor": "scripted", "stopping_threshold": 0.75}),
    "es_max_mode": ({"max_epochs": 12}, {"script": SCRIPT}, {"monitor": "scripted", "mode": "max", "patience": 1}),
    "es_min_epochs": ({"max_epochs": 12, "min_epochs": 6}, {"script": SCRIPT}, {"monitor": "scripted", "mode": "max", "patience": 1}),
    # logged on_step and on_epoch: the monitor names the bare metric (the epoch value).
    # fast_dev_run turns EarlyStopping off: its monitor is not even looked for
    "es_fast_dev_run": ({"fast_dev_run": 2}, {}, {"monitor": "not_logged"}),
    "es_forked_metric": ({"max_epochs": 12}, {"script": SCRIPT, "forked": True}, {"monitor": "scripted", "patience": 2, "min_delta": 0.05}),
    # test_should_stop_triggers_validation_once (loops.md row 29): a stop asked at the first training epoch's end,
    # honoured once min_epochs / min_steps are met, with one validation per epoch until then
    **{f"es_should_stop_{name}": ({"max_epochs": 10, "limit_train_batches": 2, "limit_val_batches": 2,
                                   "num_sanity_val_steps": 0, **minimum}, {},
                                  {"monitor": "train_loss", "stopping_threshold": 100, "check_on_train_epoch_end": True})
       for name, minimum in (("min_epochs_3", {"min_epochs": 3}), ("min_steps_3", {"min_steps": 3}))},
    # Lightning's tests_pytorch/callbacks/test_early_stopping.py, ported (docs/lightning-tests/test_early_stopping.md).
    # test_early_stopping_patience and test_early_stopping_patience_train (with validation_step)
    **{f"es_patience_{name}{'_train_end' if train_end else ''}": (
        {"max_epochs": 10, "num_sanity_val_steps": 0}, {"script": script},
        {"monitor": "scripted", "patience": patience, **({"check_on_train_epoch_end": True} if train_end else {})})
       for name, script, patience in (("flat", [6, 5, 5, 5, 5, 5], 3), ("1_steps", [6, 5, 4, 4, 3, 3], 1), ("bounce", [6, 5, 6, 5, 5, 5], 3))
       for train_end in (False, True)},
    # test_early_stopping_patience_train without validation_step: `scripted` logged in on_train_epoch_end
    **{f"es_patience_{name}_train_end_no_val": (
        {"max_epochs": 10, "num_sanity_val_steps": 0, "limit_val_batches": 0}, {"script": script, "script_at": "on_train_epoch_end"},
        {"monitor": "scripted", "patience": patience, "check_on_train_epoch_end": True})
       for name, script, patience in (("flat", [6, 5, 5, 5, 5, 5], 3), ("1_steps", [6, 5, 4, 4, 3, 3], 1), ("bounce", [6, 5, 6, 5, 5, 5], 3))},
    # test_early_stopping_thresholds
    "es_default_patience_rebound": ({"max_epochs": 20}, {"script": [8, 4, 2, 3, 4, 5, 8, 10]}, {"monitor": "scripted"}),
    "es_stopping_threshold_2.9": ({"max_epochs": 20}, {"script": [9, 8, 7, 6, 5, 6, 4, 3, 2, 1]}, {"monitor": "scripted", "stopping_threshold": 2.9}),
    "es_divergence_15.9": ({"max_epochs": 20}, {"script": [9, 4, 2, 16, 32, 64]}, {"monitor": "scripted", "divergence_threshold": 15.9}),
    # test_early_stopping_on_non_finite_monitor
    "es_inf": ({"max_epochs": 10}, {"script": [4, 3, "inf", 2, 1]}, {"monitor": "scripted", "check_finite": True}),
    "es_nan": ({"max_epochs": 10}, {"script": [4, 3, "nan", 2, 1]}, {"monitor": "scripted", "check_finite": True}),
    # test_early_stopping_reasons (the reason and stopped_epoch of each)
    "es_reason_patience": ({"max_epochs": 10}, {"script": [10.0] * 10}, {"monitor": "scripted", "patience": 2}),
    "es_reason_threshold": ({"max_epochs": 10}, {"script": [5.0, 3.0, 1.0, 0.5] + [0.1] * 6}, {"monitor": "scripted", "stopping_threshold": 0.6}),
    "es_reason_divergence": ({"max_epochs": 10}, {"script": [1.0, 2.0, 5.0, 10.0] + [15.0] * 6}, {"monitor": "scripted", "divergence_threshold": 8.0}),
    "es_reason_nan": ({"max_epochs": 10}, {"script": [1.0, 0.5] + ["nan"] * 8}, {"monitor": "scripted", "check_finite": True}),
    "es_reason_not_stopped": ({"max_epochs": 3}, {"script": [5.0, 4.0, 3.0]}, {"monitor": "scripted", "patience": 3}),
    # test_should_stop_triggers_validation_once (tests_pytorch/loops/test_training_loop.py): a stop held off by
    # min_steps / min_epochs still validates once per epoch
    **{f"es_stop_triggers_val_{k}_3": ({"max_epochs": 3, k: 3, "limit_train_batches": 2, "limit_val_batches": 2, "num_sanity_val_steps": 0}, {},
                                       {"monitor": "train_loss", "check_on_train_epoch_end": True, "stopping_threshold": 100})
       for k in ("min_steps", "min_epochs")},
}


# test_fx_validator_integration (docs/lightning-tests/logging.md row 2): `self.log` in each module hook an entry
# calls, with one batch of each split.
LOG_SWEEP_TRAINER = {"max_epochs": 2, "limit_train_batches": 1, "limit_val_batches": 1, "limit_test_batches": 1,
                     "limit_predict_batches": 1}
EVERY_ENTRY = ("setup", "teardown", "configure_model", "on_before_batch_transfer", "on_after_batch_transfer")


def log_sweep():
    """Per entry and module hook: None where `self.log` is accepted, else Lightning's message."""
    out = {}
    for entry, prefixes in (("fit", ("on_fit", "on_train", "on_validation", "on_before", "on_after")),
                            ("test", ("on_test",)), ("predict", ("on_predict",))):
        out[entry] = {}
        for hook in MODULE_HOOKS:
            if hook not in EVERY_ENTRY and not hook.startswith(prefixes):
                continue
            torch.manual_seed(0)
            trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, **LOG_SWEEP_TRAINER)
            try:
                getattr(trainer, entry)(Recorder([], log_in=hook))
                out[entry][hook] = None
            except Exception as e:  # noqa: BLE001  (Lightning's refusal, whatever its class)
                out[entry][hook] = str(e)
    return {"trainer": LOG_SWEEP_TRAINER, "entries": out}


def main(path):
    out = {"lightning": L.__version__, "torch": torch.__version__, "cases": {}, "log_sweep": log_sweep()}
    for name, (entry, targs, margs, log_every) in CASES.items():
        out["cases"][name] = {"entry": entry, "trainer": targs, "model": margs or {}, "log_every_n_steps": log_every, **run(entry, targs, margs, log_every)}
    for name, (targs, margs, es) in EARLY_STOPPING.items():
        out["cases"][name] = {"entry": "fit", "trainer": targs, "model": margs, "log_every_n_steps": None, "early_stopping": es, **run("fit", targs, margs, None, es)}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: lightning {L.__version__}, {len(CASES)} cases")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/lightning.json")
