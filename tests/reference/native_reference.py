"""The native test module (host/src/testing.rs: `Regression` on `Points`) written as a
LightningModule and LightningDataModule and trained by Lightning itself: the losses, the
final weights, where and why EarlyStopping stops, and the hooks a resumed run calls, for the in-file loop tests
(host/src/loops/fit.rs) to compare with. Same draws in the same order: the weight at
`__init__`, the points at `setup`, the samplers' seeds from the global generator.

    .venv/bin/python tests/reference/native_reference.py tests/reference/native.json
"""

import json
import logging
import os
import signal
import sys
import tempfile
import warnings

import torch
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, OnExceptionCheckpoint

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
torch.set_num_threads(1)


class Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(1, 3) * 0.1)
        self.bias = torch.nn.Parameter(torch.zeros(1))
        self.train_losses = []
        self.none_even = False  # training_step returns None at even batch indices
        self.log_step = False  # training_step logs `step` (10 * global_step + 1), on the step only
        self.val_on_step = False  # validation_step logs val_loss on the step too
        self.loader_names = False  # with several DataLoaders, also `val_rows_<i>` (add_dataloader_idx=False)
        self.dup_hooks = None  # "mean"/"sum": `dup` logged by training_step (1.0) and on_train_batch_end (3.0)
        self.shared_name = False  # `shared`: the loss, by training_step (on the step) and validation_step
        self.sparse_log = False  # `sparse` at odd training batches, `val_sparse` at validation batch 0 (on the step)
        self.epoch_end_value = None  # logged as `epoch_value` in on_validation_epoch_end
        self.reduce_probe = None  # "min"/"max"/"sum"/"mean": `foo` (training) and `bar` (validation) = batch_idx, epoch only
        # A log plan (docs/lightning-tests/logging.md, harness LP): entries {hook, name, value, and any of on_step,
        # on_epoch, prog_bar, logger, reduce_fx}; `value` a number or "batch_idx", "epoch", "step".
        self.log_plan = []

    def plan(self, hook, batch_idx=None):
        for e in self.log_plan:
            if e["hook"] == hook:
                v = e["value"]
                v = {"batch_idx": batch_idx, "epoch": self.current_epoch, "step": self.global_step}[v] if isinstance(v, str) else v
                self.log(e["name"], float(v), **{k: e[k] for k in ("on_step", "on_epoch", "prog_bar", "logger", "reduce_fx") if k in e})

    def loss(self, batch):
        x, y = batch
        return ((x @ self.weight.t() + self.bias - y) ** 2).mean()

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.plan("training_step", batch_idx)
        self.log("train_loss", loss, on_epoch=True)
        if self.log_step:
            self.log("step", float(10 * self.global_step + 1))
        if self.dup_hooks:
            self.log("dup", 1.0, on_epoch=True)
        if self.shared_name:
            self.log("shared", loss)
        if self.sparse_log and batch_idx % 2 == 1:
            self.log("sparse", float(batch_idx) + 0.5)
        if self.reduce_probe:
            self.log("foo", float(batch_idx), on_step=False, on_epoch=True, reduce_fx=self.reduce_probe)
        self.train_losses.append(loss.item())
        if self.none_even and batch_idx % 2 == 0:
            return None
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        self.plan("validation_step", batch_idx)
        self.log("val_loss", self.loss(batch), on_epoch=True, **({"on_step": True} if self.val_on_step else {}))
        if self.shared_name:
            self.log("shared", self.loss(batch))
        if self.sparse_log and batch_idx == 0:
            self.log("val_sparse", 1.5, on_step=True, on_epoch=False)
        if self.reduce_probe:
            self.log("bar", float(batch_idx), on_step=False, on_epoch=True, reduce_fx=self.reduce_probe)
        if self.loader_names and self.trainer.num_val_batches and len(self.trainer.num_val_batches) > 1:
            self.log(f"val_rows_{dataloader_idx}", float(len(batch[0])), on_epoch=True, reduce_fx="sum",
                     add_dataloader_idx=False)

    def on_validation_epoch_end(self):
        self.plan("on_validation_epoch_end")
        if self.epoch_end_value is not None:
            self.log("epoch_value", self.epoch_end_value)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.plan("on_train_batch_end", batch_idx)
        if self.dup_hooks:
            self.log("dup", 3.0, on_epoch=True, reduce_fx=self.dup_hooks)

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self.plan("test_step", batch_idx)
        self.log("test_loss", self.loss(batch), on_epoch=True)

    def on_train_start(self):
        self.plan("on_train_start")

    def on_train_epoch_start(self):
        self.plan("on_train_epoch_start")

    def on_train_batch_start(self, batch, batch_idx):
        self.plan("on_train_batch_start", batch_idx)

    def on_train_epoch_end(self):
        self.plan("on_train_epoch_end")

    def on_validation_start(self):
        self.plan("on_validation_start")

    def on_validation_epoch_start(self):
        self.plan("on_validation_epoch_start")

    def on_validation_batch_start(self, batch, batch_idx, dataloader_idx=0):
        self.plan("on_validation_batch_start", batch_idx)

    def on_validation_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
        self.plan("on_validation_batch_end", batch_idx)

    def on_test_epoch_end(self):
        self.plan("on_test_epoch_end")

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return batch[0] @ self.weight.T + self.bias

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)


def points(n):
    x = torch.randn(n, 3)
    noise = torch.randn(n, 1) * 0.1
    return x, x @ torch.tensor([1.0, -2.0, 0.5]).reshape(3, 1) + 0.3 + noise


class Points(L.LightningDataModule):
    def __init__(self, second_val=None):
        super().__init__()
        self.second_val = second_val  # a second evaluation DataLoader of this many points, batch 3

    def setup(self, stage):
        if not hasattr(self, "train"):
            self.train = points(16)
            self.val = points(8)
            if self.second_val:
                self.val2 = points(self.second_val)

    def train_dataloader(self):
        return DataLoader(TensorDataset(*self.train), batch_size=4, shuffle=True)

    def val_dataloader(self):
        first = DataLoader(TensorDataset(*self.val), batch_size=4)
        return [first, DataLoader(TensorDataset(*self.val2), batch_size=3)] if self.second_val else first

    test_dataloader = val_dataloader
    predict_dataloader = val_dataloader


# name: Trainer arguments (beyond max_epochs) and EarlyStopping's, or None.
CASES = {
    "plain": ({"max_epochs": 3, "val_check_interval": 0.5}, None),
    "early_stopping": ({"max_epochs": 30}, {"monitor": "val_loss", "patience": 2, "min_delta": 0.05}),
    "early_stopping_min_epochs": ({"max_epochs": 30, "min_epochs": 12}, {"monitor": "val_loss", "patience": 2, "min_delta": 0.05}),
    "early_stopping_on_train_epoch_end": ({"max_epochs": 30}, {"monitor": "train_loss_epoch", "patience": 1, "min_delta": 0.05, "check_on_train_epoch_end": True}),
    "early_stopping_threshold": ({"max_epochs": 30}, {"monitor": "val_loss", "stopping_threshold": 0.05}),
    # Lightning's tests_pytorch/callbacks/test_early_stopping.py, ported (docs/lightning-tests/test_early_stopping.md):
    # test_early_stopping_no_extraneous_invocations: unset check_on_train_epoch_end with validation once per epoch
    # checks at the training epoch's end (the training metrics are the epoch's there)
    "es_train_epoch_metric_default_check": ({"max_epochs": 30}, {"monitor": "train_loss_epoch", "patience": 1, "min_delta": 0.05}),
    "es_train_loss_default_check": ({"max_epochs": 12}, {"monitor": "train_loss", "patience": 3}),
    # test_early_stopping_no_val_step (no validation; overfit_batches)
    "es_no_val_patience_0": ({"max_epochs": 10, "limit_val_batches": 0},
                             {"monitor": "train_loss", "min_delta": 0.1, "patience": 0, "check_on_train_epoch_end": True}),
    "es_overfit_patience_0": ({"max_epochs": 10, "overfit_batches": 0.5},
                              {"monitor": "train_loss", "min_delta": 0.1, "patience": 0, "check_on_train_epoch_end": True}),
    # test_early_stopping_thresholds (divergence)
    "es_divergence_max": ({"max_epochs": 30}, {"monitor": "val_loss", "mode": "max", "divergence_threshold": 0.5}),
    # test_min_epochs_min_steps_global_step: a threshold every check passes stands in for the test's mocked stop
    **{f"es_min_{b}b_{e}e_{s}s": ({"limit_val_batches": 0, "min_epochs": e, "min_steps": s, **({"limit_train_batches": b} if b < 4 else {})},
                                  {"monitor": "train_loss", "stopping_threshold": 1e9})
       for b in (3, 4) for (e, s) in ((0, 10), (2, 0), (1, 10), (3, 10))},
    # test_check_on_train_epoch_end_smart_handling: several validations per epoch, or not every epoch, check after them
    "es_vci_0.5_third_check": ({"max_epochs": 10, "val_check_interval": 0.5}, {"monitor": "val_loss", "mode": "max", "patience": 2}),
    "es_check_val_every_2": ({"max_epochs": 5, "check_val_every_n_epoch": 2}, {"monitor": "val_loss", "patience": 1}),
    "es_vci_0.5_no_val": ({"max_epochs": 4, "val_check_interval": 0.5, "limit_val_batches": 0},
                          {"monitor": "train_loss_epoch", "mode": "max", "patience": 1}),
    # min_delta's sign as Lightning applies it (a negative one makes any value within it an improvement)
    "es_negative_min_delta": ({"max_epochs": 30}, {"monitor": "val_loss", "patience": 2, "min_delta": -0.2}),
    # Lightning's tests_pytorch/trainer/flags/, ported (docs/lightning-tests/trainer_flags.md).
    # test_min_max_steps_epochs (on 4 batches: max_steps 20 -> 10, min_steps 10 -> 6); a max_steps stop inside an epoch counts it
    "mm_max_steps_10": ({"max_steps": 10}, None),  # 10/3/10
    "mm_max_epochs_3_max_steps_10": ({"max_epochs": 3, "max_steps": 10}, None),  # 10/3/10
    "mm_min_steps_6_max_steps_10": ({"min_steps": 6, "max_steps": 10}, None),  # 10/3/10
    "mm_min_epochs_1_max_epochs_3": ({"min_epochs": 1, "max_epochs": 3}, None),  # 12/3/12
    "mm_min_epochs_1_max_steps_10": ({"min_epochs": 1, "max_steps": 10}, None),  # 10/3/10
    "mm_max_epochs_3_min_steps_6": ({"max_epochs": 3, "min_steps": 6}, None),  # 12/3/12
    # not in the test file: the max limits win over the min ones (FitLoop.done)
    "mm_max_epochs_1_min_steps_6": ({"max_epochs": 1, "min_steps": 6}, None),  # 4/1/4
    "mm_max_epochs_1_min_epochs_3": ({"max_epochs": 1, "min_epochs": 3}, None),  # 4/1/4
    # test_max_epochs_not_set_warning: max_epochs unset (1000), a stop after the first batch
    "max_epochs_unset_stop_at_1": ({"limit_train_batches": 1},
                                   {"monitor": "train_loss", "stopping_threshold": 1e9, "check_on_train_epoch_end": True}),  # 1/1/1, stopped_epoch 0, STOPPING_THRESHOLD
    # test_val_check_interval (1/3 of 4 batches: a validation after every batch)
    "vci_third_3_epochs": ({"max_epochs": 3, "val_check_interval": 1 / 3}, None),  # 12/3/12
    # test_overfit_batch_limits_train: the train data unshuffled
    "overfit_1.0": ({"max_epochs": 3, "overfit_batches": 1.0}, None),  # 12/3/12 (first loss 2.7916, shuffled 5.3296)
    "overfit_2": ({"max_epochs": 3, "overfit_batches": 2}, None),  # 6/3/6
    # test_num_dataloader_batches: a limit above the loader's length
    "limit_train_7_val_100": ({"max_epochs": 2, "limit_train_batches": 7, "limit_val_batches": 100}, None),  # 8/2/8
    # Lightning's tests_pytorch/loops (docs/lightning-tests/loops.md rows 36-37): a None from training_step skips its
    # backward only; the step is counted and the optimizer steps (SGD skips the parameters without grads)
    "none_even": ({"max_epochs": 2}, None, {"none_even": True}),
    "none_even_accumulate_2": ({"max_epochs": 2, "accumulate_grad_batches": 2}, None, {"none_even": True}),
    # one name from two hooks (logging.md differences 3, 4): callback_metrics hold the later-registered one's
    "dup_hooks_sum": ({"max_epochs": 2}, None, {"dup_hooks": "sum"}),
    # a training step value and a validation value under one name: the epoch's end keeps validation's (EarlyStopping
    # checks there)
    "es_shared_name": ({"max_epochs": 30}, {"monitor": "shared", "patience": 2, "min_delta": 0.05}, {"shared_name": True}),
    # two validation DataLoaders: EarlyStopping on the second's `val_loss/dataloader_idx_1`
    "es_second_val_loader": ({"max_epochs": 30}, {"monitor": "val_loss/dataloader_idx_1", "patience": 2, "min_delta": 0.05},
                             {"second_val": 6}),
}


def run(trainer_args, es_args, module_args=None):
    L.seed_everything(0, verbose=False)
    model = Regression()
    attrs = dict(module_args or {})
    second_val = attrs.pop("second_val", None)  # the DataModule's: a second validation DataLoader
    for k, v in attrs.items():
        setattr(model, k, v)
    callbacks = [EarlyStopping(**es_args)] if es_args else []
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=callbacks, **trainer_args)
    trainer.fit(model, datamodule=Points(second_val))
    return {
        "trainer": trainer_args,
        "early_stopping": es_args,
        "module": module_args,
        "global_step": trainer.global_step,
        "current_epoch": trainer.current_epoch,
        "stopped_epoch": callbacks[0].stopped_epoch if callbacks else None,
        "stopping_reason": callbacks[0].stopping_reason.name if callbacks else None,
        "train_losses": model.train_losses,
        "weights": model.weight.detach().flatten().tolist() + model.bias.detach().tolist(),
        "callback_metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }


QUIET = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)


def checkpoints():
    """test_resume_early_stopping_from_checkpoint: EarlyStopping's state in each epoch's
    checkpoint (patience 5, every epoch kept as `{epoch}`); resuming from those files with
    max_epochs=1 (past it is refused, at it nothing trains), and with patience 1."""
    es_args = {"monitor": "val_loss", "patience": 5}
    with tempfile.TemporaryDirectory() as d:
        L.seed_everything(0, verbose=False)
        es = EarlyStopping(**es_args)
        mc = ModelCheckpoint(dirpath=d, save_top_k=-1, filename="{epoch}")
        trainer = L.Trainer(max_epochs=4, callbacks=[es, mc], **QUIET)
        trainer.fit(Regression(), datamodule=Points())
        states = {}
        for f in sorted(os.listdir(d)):
            state = torch.load(os.path.join(d, f), weights_only=False)["callbacks"][es.state_key]
            states[f] = {k: float(v) if torch.is_tensor(v) else v for k, v in state.items()}
        resumes = {}
        for f in ("epoch=1.ckpt", "epoch=2.ckpt"):
            L.seed_everything(0, verbose=False)
            trainer = L.Trainer(max_epochs=1, enable_checkpointing=False, **QUIET)
            try:
                trainer.fit(Regression(), datamodule=Points(), ckpt_path=os.path.join(d, f))
                resumes[f] = {"error": None, "global_step": trainer.global_step}
            except Exception as e:  # noqa: BLE001
                resumes[f] = {"error": str(e)}
        # A resumed EarlyStopping takes the saved patience (5), not its own (1).
        L.seed_everything(0, verbose=False)
        es1 = EarlyStopping(monitor="val_loss", patience=1)
        trainer = L.Trainer(max_epochs=20, callbacks=[es1], enable_checkpointing=False, **QUIET)
        trainer.fit(Regression(), datamodule=Points(), ckpt_path=os.path.join(d, "epoch=1.ckpt"))
        patience = {"global_step": trainer.global_step, "current_epoch": trainer.current_epoch,
                    "stopped_epoch": es1.stopped_epoch, "patience": es1.patience}
    return {"early_stopping": es_args, "state_key": es.state_key, "states": states, "resume_with_max_epochs_1": resumes,
            "resume_with_patience_1": patience}


class Counted(Regression):
    """Regression counting the hooks the resume cases compare."""

    HOOKS = ("on_train_epoch_start", "on_train_epoch_end", "on_validation_start")

    def __init__(self):
        super().__init__()
        self.counts = {h: 0 for h in (*self.HOOKS, "training_step", "validation_step")}
        self.fail_val_at = None
        self.sigterm_at = None

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # SIGTERM as a scheduler sends it: Lightning's handler notes it, and the loop raises
        # SIGTERMException at the end of this batch (training_epoch_loop `on_advance_end`).
        if self.sigterm_at == (self.current_epoch, batch_idx):
            os.kill(os.getpid(), signal.SIGTERM)

    def on_train_epoch_start(self):
        self.counts["on_train_epoch_start"] += 1

    def on_train_epoch_end(self):
        self.counts["on_train_epoch_end"] += 1

    def on_validation_start(self):
        self.counts["on_validation_start"] += 1

    def on_train_end(self):
        self.batches_that_stepped = self.trainer.fit_loop.epoch_loop._batches_that_stepped

    def training_step(self, batch, batch_idx):
        self.counts["training_step"] += 1
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self.counts["validation_step"] += 1
        if self.fail_val_at == (self.current_epoch, batch_idx):
            raise RuntimeError(f"validation_step fails at {self.fail_val_at}")
        return super().validation_step(batch, batch_idx)


# Lightning's tests_pytorch/loops resume cases (docs/lightning-tests/loops.md, RS-a..d): a first fit
# saves checkpoints, a second resumes from one; the hooks the resumed run calls. name: (first fit's
# Trainer arguments, its ModelCheckpoint's (`on_exception`: Lightning's OnExceptionCheckpoint), the file resumed
# from, the resumed run's max_epochs, and the (epoch, batch) where the first fit's validation_step fails).
RESUMES = {
    "rs_a_mid_epoch": ({"max_epochs": 2}, {"every_n_train_steps": 2, "save_top_k": -1}, "epoch=0-step=2.ckpt", 2),
    "rs_b_last_batch_val_due": ({"max_epochs": 2}, {"every_n_train_steps": 2, "save_top_k": -1}, "epoch=0-step=4.ckpt", 2),
    "rs_c_validation_end": ({"max_epochs": 1}, {"save_last": True}, "last.ckpt", 2),
    # test_no_val_on_train_epoch_loop_restart (loops.md row 27): 1 batch, 1 validation batch (no sanity check, as every case here)
    "rs_j_no_val_on_restart": ({"max_epochs": 1, "limit_train_batches": 1, "limit_val_batches": 1},
                               {"save_last": True}, "last.ckpt", 2),
    "rs_d_epoch_end_no_val": ({"max_epochs": 2, "limit_val_batches": 0}, {"save_top_k": -1}, "epoch=0-step=4.ckpt", 2),
    "rs_e_failure_in_mid_epoch_validation": ({"max_epochs": 1, "val_check_interval": 0.5}, {"on_exception": True},
                                             "on_exception.ckpt", 1, (0, 1)),
    "rs_f_failure_in_epoch_end_validation": ({"max_epochs": 1}, {"on_exception": True}, "on_exception.ckpt", 1, (0, 1)),
    # ModelCheckpoint(save_on_exception=True): the template's file and last.ckpt at the failure
    "rs_g_save_on_exception": ({"max_epochs": 1, "val_check_interval": 0.5},
                               {"save_on_exception": True, "save_last": True}, "epoch=0-step=2.ckpt", 1, (0, 1)),
    # SIGTERM after the second batch (Lightning's SIGTERMException reaches on_exception): what
    # OnExceptionCheckpoint and ModelCheckpoint(save_on_exception=True) save, and the run resumed from it
    "rs_h_sigterm_on_exception": ({"max_epochs": 2}, {"on_exception": True}, "on_exception.ckpt", 2),
    "rs_i_sigterm_save_on_exception": ({"max_epochs": 2}, {"save_on_exception": True, "save_last": True},
                                       "epoch=0-step=2.ckpt", 2),
}

# The resume cases whose first fit gets SIGTERM, and at which (epoch, training batch).
SIGTERM_AT = {"rs_h_sigterm_on_exception": (0, 1), "rs_i_sigterm_save_on_exception": (0, 1)}


def resumes():
    out = {}
    for name, (first, mc_args, file, max_epochs, *fail) in RESUMES.items():
        with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as root:
            L.seed_everything(0, verbose=False)
            if mc_args.get("on_exception"):
                mc = OnExceptionCheckpoint(dirpath=d)
            else:
                mc = ModelCheckpoint(dirpath=d, **mc_args)
            trainer = L.Trainer(num_sanity_val_steps=0, callbacks=[mc], default_root_dir=root, **QUIET, **first)
            model = Counted()
            model.fail_val_at = fail[0] if fail else None
            model.sigterm_at = SIGTERM_AT.get(name)
            try:
                trainer.fit(model, datamodule=Points())
            except RuntimeError:
                assert fail, name
            except SystemExit:  # SIGTERMException
                assert model.sigterm_at, name
            saved = sorted(os.listdir(d))
            L.seed_everything(0, verbose=False)
            model = Counted()
            resume = {k: v for k, v in first.items() if k != "max_epochs"}
            trainer = L.Trainer(max_epochs=max_epochs, num_sanity_val_steps=0, enable_checkpointing=False, **QUIET,
                                **resume)
            trainer.fit(model, datamodule=Points(), ckpt_path=os.path.join(d, file))
            out[name] = {"first": first, "checkpoint": mc_args, "file": file, "max_epochs": max_epochs, "saved": saved,
                         "fail_val_at": fail[0] if fail else None, "sigterm_at": SIGTERM_AT.get(name),
                         "counts": model.counts, "global_step": trainer.global_step,
                         "batches_that_stepped": model.batches_that_stepped,
                         "current_epoch": trainer.current_epoch}
    return out


class PlateauRegression(Regression):
    """Regression with an epoch-interval ReduceLROnPlateau (factor 0.5, patience 0) on `monitor`."""

    def __init__(self, monitor):
        super().__init__()
        self.monitor = monitor

    def configure_optimizers(self):
        opt = super().configure_optimizers()
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": self.monitor, "interval": "epoch"}}


class SchedulerState(L.Callback):
    def on_train_end(self, trainer, pl_module):
        s = trainer.lr_scheduler_configs[0].scheduler
        self.state = {"last_epoch": s.last_epoch, "num_bad_epochs": s.num_bad_epochs, "best": float(s.best),
                      "lr": trainer.optimizers[0].param_groups[0]["lr"]}


# An epoch-interval ReduceLROnPlateau steps after an epoch that reached its last batch, not after one cut short
# (loops.md difference 4). name: (Trainer arguments, the monitored metric).
PLATEAU = {
    "plateau_3_epochs": ({"max_epochs": 3, "val_check_interval": 0.5}, "val_loss"),
    "plateau_max_steps_cut": ({"max_steps": 6, "val_check_interval": 0.5}, "val_loss"),
    "plateau_train_loss_cut": ({"max_steps": 10, "limit_val_batches": 0}, "train_loss_epoch"),
}


def plateaus():
    out = {}
    for name, (args, monitor) in PLATEAU.items():
        L.seed_everything(0, verbose=False)
        cb = SchedulerState()
        trainer = L.Trainer(enable_checkpointing=False, callbacks=[cb], **QUIET, **args)
        trainer.fit(PlateauRegression(monitor), datamodule=Points())
        out[name] = {"trainer": args, "monitor": monitor, "global_step": trainer.global_step, "scheduler": cb.state}
    return out


class StopAt(L.Callback):
    """Sets `trainer.should_stop` once, at the end of training batch `batch` of epoch `epoch`."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.at:
            trainer.should_stop = True


# Lightning's tests_pytorch/loops test_should_stop_mid_epoch (docs/lightning-tests/loops.md, CB): a stop asked for
# inside an epoch ends it after a validation, or once min_epochs/min_steps allow. name: (Trainer arguments, the
# (epoch, batch) where a callback asks to stop).
STOPS = {
    "stop_mid_epoch": ({"max_epochs": 3}, (0, 1)),
    "stop_at_last_batch": ({"max_epochs": 3}, (0, 3)),
    "stop_mid_epoch_min_epochs_2": ({"max_epochs": 4, "min_epochs": 2}, (0, 1)),
    "stop_mid_epoch_min_steps_6": ({"max_epochs": 4, "min_steps": 6}, (0, 1)),
}


def stops():
    out = {}
    for name, (args, at) in STOPS.items():
        L.seed_everything(0, verbose=False)
        model = Counted()
        trainer = L.Trainer(enable_checkpointing=False, callbacks=[StopAt(*at)], **QUIET, **args)
        trainer.fit(model, datamodule=Points())
        out[name] = {"trainer": args, "at": at, "global_step": trainer.global_step, "current_epoch": trainer.current_epoch,
                     "counts": model.counts, "train_losses": model.train_losses}
    return out


class MetricsAt(L.Callback):
    """What `trainer.callback_metrics` and `logged_metrics` hold at each epoch-end hook, at on_validation_end and at
    the end."""

    def __init__(self):
        self.seen = []

    def keep(self, trainer, hook):
        self.seen.append({"hook": hook, "epoch": trainer.current_epoch,
                          "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
                          "logged": {k: float(v) for k, v in trainer.logged_metrics.items()}})

    def on_train_end(self, trainer, pl_module):
        self.keep(trainer, "on_train_end")

    def on_sanity_check_end(self, trainer, pl_module):
        self.keep(trainer, "on_sanity_check_end")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (0, 0):  # the sanity run's values are gone (test_sanity_metrics_are_reset)
            self.keep(trainer, "on_train_batch_start")

    def on_train_epoch_end(self, trainer, pl_module):
        self.keep(trainer, "on_train_epoch_end")

    def on_validation_epoch_end(self, trainer, pl_module):
        self.keep(trainer, "on_validation_epoch_end")

    def on_validation_end(self, trainer, pl_module):
        # The run's epoch values are in logged_metrics by now (issue 18: before on_validation_end).
        self.keep(trainer, "on_validation_end")


# Lightning's tests_pytorch/trainer/logging_ (docs/lightning-tests/logging.md, difference 1): callbacks read this
# epoch's values at the epoch-end hooks. name: Trainer arguments.
METRICS_AT = {
    "metrics_at_epoch_ends": ({"max_epochs": 2, "val_check_interval": 0.5}, {}),
    # logged_metrics between logger rows (logging.md row 7, difference 2)
    "metrics_at_no_rows": ({"max_epochs": 1, "limit_val_batches": 0, "log_every_n_steps": 50}, {}),
    # test_logged_metrics_has_logged_epoch_value (logging.md row 7): a logged `epoch` is kept, between logger rows
    "metrics_at_logged_epoch": ({"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 0, "log_every_n_steps": 50},
                                {"log_plan": [{"hook": "training_step", "name": "epoch", "value": "batch_idx"}]}),
}


def planned(hook, names, **options):
    """Log plan entries: each name logged in `hook` with the value and options given."""
    return [{"hook": hook, "name": n, **options} for n in names]


# Lightning's test_train_loop_logging.py and test_eval_loop_logging.py as log plans (logging.md rows 11, 12, 16, 18,
# 25, 29-32): what callback_metrics and logged_metrics hold, every value, at each epoch end and at the end.
FOUR = {"limit_train_batches": 2, "limit_val_batches": 2, "max_epochs": 2, "log_every_n_steps": 1}
def every_option(epoch_hooks, batch_hooks):
    """Plan entries logging in each hook with each on_step × on_epoch × prog_bar Lightning allows there: epoch-level
    hooks the epoch, batch hooks the batch index (a name per hook and options)."""
    plan = []
    for prog_bar in (False, True):
        for hook in epoch_hooks:
            plan.append({"hook": hook, "name": f"{hook}_{int(prog_bar)}", "value": "epoch", "on_step": False,
                         "on_epoch": True, "prog_bar": prog_bar})
        for hook in batch_hooks:
            for on_step, on_epoch in ((True, False), (False, True), (True, True)):
                plan.append({"hook": hook, "name": f"{hook}_{int(on_step)}{int(on_epoch)}{int(prog_bar)}",
                             "value": "batch_idx", "on_step": on_step, "on_epoch": on_epoch, "prog_bar": prog_bar})
    return plan


# test_validation_step_log_with_tensorboard: 1 training batch, 2 validation batches, 2 epochs
VALIDATION_STEP_LOG = {"max_epochs": 2, "limit_train_batches": 1, "limit_val_batches": 2, "log_every_n_steps": 1}
VALIDATION_STEP_PLAN = [
    {"hook": "validation_step", "name": "valid_loss_0", "value": "batch_idx", "on_step": True, "on_epoch": True},
    {"hook": "validation_step", "name": "valid_loss_1", "value": "batch_idx", "on_step": False, "on_epoch": True},
    {"hook": "validation_step", "name": "valid_loss_2", "value": "batch_idx", "on_step": True, "on_epoch": False}]
PLANS = {
    # test__training_step__log: every on_step × on_epoch for the logger and the progress bar
    "plan_training_step_log": (FOUR, [
        *planned("training_step", ["default"], value="batch_idx"),
        {"hook": "training_step", "name": "l_s", "value": "batch_idx", "on_step": True, "on_epoch": False},
        {"hook": "training_step", "name": "l_e", "value": "batch_idx", "on_step": False, "on_epoch": True},
        {"hook": "training_step", "name": "l_se", "value": "batch_idx", "on_step": True, "on_epoch": True},
        {"hook": "training_step", "name": "p_s", "value": "step", "on_step": True, "on_epoch": False, "prog_bar": True,
         "logger": False},
        {"hook": "training_step", "name": "p_e", "value": "step", "on_step": False, "on_epoch": True, "prog_bar": True,
         "logger": False},
        {"hook": "training_step", "name": "p_se", "value": "step", "on_step": True, "on_epoch": True, "prog_bar": True,
         "logger": False}]),
    # test__training_step__epoch_end__log
    "plan_train_epoch_end_log": (FOUR, [
        {"hook": "training_step", "name": "a", "value": "batch_idx", "on_step": True, "on_epoch": True},
        *planned("training_step", ["a1", "a2"], value="step"),
        {"hook": "on_train_epoch_end", "name": "b1", "value": 1.0},
        {"hook": "on_train_epoch_end", "name": "b", "value": 2.0, "on_epoch": True, "prog_bar": True}]),
    # test_logging_sync_dist_true on one device (sync_dist changes nothing there): every reduction
    "plan_reductions": ({"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 3}, [
        {"hook": "training_step", "name": "foo", "value": 1, "on_step": True, "on_epoch": False, "reduce_fx": "sum"},
        {"hook": "training_step", "name": "foo_2", "value": 2, "on_step": True, "on_epoch": False, "reduce_fx": "sum"},
        {"hook": "training_step", "name": "foo_3", "value": 2, "on_step": True, "on_epoch": False, "reduce_fx": "mean"},
        {"hook": "training_step", "name": "foo_4", "value": 1, "on_step": True, "on_epoch": False, "reduce_fx": "mean"},
        {"hook": "training_step", "name": "foo_5", "value": "batch_idx", "on_step": True, "on_epoch": False,
         "reduce_fx": "max"},
        {"hook": "training_step", "name": "foo_6", "value": 1, "on_step": False, "on_epoch": True, "reduce_fx": "sum"},
        {"hook": "training_step", "name": "foo_7", "value": 2, "on_step": False, "on_epoch": True, "reduce_fx": "sum"},
        {"hook": "training_step", "name": "foo_8", "value": 2, "on_step": False, "on_epoch": True, "reduce_fx": "mean"},
        {"hook": "training_step", "name": "foo_9", "value": 1, "on_step": False, "on_epoch": True, "reduce_fx": "mean"},
        {"hook": "training_step", "name": "foo_10", "value": "batch_idx", "on_step": False, "on_epoch": True,
         "reduce_fx": "max"},
        {"hook": "training_step", "name": "foo_11", "value": "batch_idx", "on_step": True, "on_epoch": True,
         "reduce_fx": "mean"},
        {"hook": "validation_step", "name": "bar", "value": 1, "on_step": False, "on_epoch": True, "reduce_fx": "sum"},
        {"hook": "validation_step", "name": "bar_2", "value": 1, "on_step": False, "on_epoch": True,
         "reduce_fx": "mean"},
        {"hook": "validation_step", "name": "bar_3", "value": "batch_idx", "on_step": False, "on_epoch": True,
         "reduce_fx": "max"}]),
    # test_progress_bar_metrics_contains_values_on_train_epoch_end (the callback_metrics half)
    "plan_epoch_values": ({"max_epochs": 2}, [
        {"hook": "training_step", "name": "foo", "value": "epoch", "on_step": False, "on_epoch": True,
         "prog_bar": True},
        {"hook": "on_train_epoch_end", "name": "foo_2", "value": "epoch", "on_epoch": True, "prog_bar": True,
         "reduce_fx": "sum"}]),
    # test_on_epoch_logging_with_sum_and_on_batch_start: sums over 3 batches, 3 sanity steps
    "plan_sums_in_batch_hooks": ({"max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 3,
                                  "num_sanity_val_steps": 3}, [
        {"hook": "on_train_batch_start", "name": "on_train_batch_start", "value": 1.0, "on_step": False,
         "on_epoch": True, "reduce_fx": "sum"},
        {"hook": "on_train_batch_end", "name": "on_train_batch_end", "value": 1.0, "on_step": False,
         "on_epoch": True, "reduce_fx": "sum"},
        *planned("on_validation_batch_start", ["on_validation_batch_start"], value=1.0, reduce_fx="sum"),
        *planned("on_validation_batch_end", ["on_validation_batch_end"], value=1.0, reduce_fx="sum"),
        *planned("on_train_epoch_end", ["on_train_epoch_end"], value=3.0, reduce_fx="mean"),
        *planned("on_validation_epoch_end", ["on_validation_epoch_end"], value=3.0, reduce_fx="mean")]),
    # test__validation_step__log
    "plan_validation_step_log": (FOUR, [
        {"hook": "training_step", "name": "a", "value": "batch_idx", "on_step": True, "on_epoch": True},
        *planned("training_step", ["a2"], value=2),
        {"hook": "validation_step", "name": "b", "value": "batch_idx", "on_step": True, "on_epoch": True}]),
    # test__validation_step__epoch_end__log
    "plan_validation_epoch_end_log": (FOUR, [
        *planned("training_step", ["a"], value="step"),
        {"hook": "training_step", "name": "b", "value": "batch_idx", "on_step": True, "on_epoch": True},
        *planned("validation_step", ["c"], value="batch_idx"),
        {"hook": "validation_step", "name": "d", "value": "batch_idx", "on_step": True, "on_epoch": True},
        {"hook": "on_validation_epoch_end", "name": "g", "value": 2, "on_epoch": True}]),
    # test_eval_epoch_logging (1 batch, log every 1, 1 epoch) and test_eval_float_logging
    "plan_eval_epoch_logging": ({"limit_train_batches": 1, "limit_val_batches": 1, "max_epochs": 1,
                                 "log_every_n_steps": 1}, [
        {"hook": "on_validation_epoch_end", "name": "c", "value": 2, "on_epoch": True, "prog_bar": True},
        *planned("on_validation_epoch_end", ["d/e/f"], value=2),
        *planned("validation_step", ["a"], value=12.0)]),
    # test_eval_logging_auto_reduce (logging.md row 33): a forked value with prog_bar, 3 validation batches
    "plan_eval_logging_auto_reduce": ({"limit_train_batches": 3, "limit_val_batches": 3, "max_epochs": 1,
                                       "num_sanity_val_steps": 0}, [
        {"hook": "validation_step", "name": "v", "value": "batch_idx", "on_step": True, "on_epoch": True, "prog_bar": True}]),
    # test_validation_step_log_with_tensorboard (logging.md row 38): forked, epoch-only and step-only values
    "plan_validation_step_log_rows": (VALIDATION_STEP_LOG, VALIDATION_STEP_PLAN),
    # test_log_works_in_train_callback and test_log_works_in_val_callback (logging.md rows 15, 36), from the module's
    # hooks (an lthost callback logs with the default options only): every on_step × on_epoch × prog_bar each allows
    "plan_train_hooks_every_option": (FOUR, every_option(
        ("on_train_start", "on_train_epoch_start", "on_train_epoch_end"), ("on_train_batch_start", "on_train_batch_end"))),
    "plan_val_hooks_every_option": (FOUR, every_option(
        ("on_validation_start", "on_validation_epoch_start", "on_validation_epoch_end"), ("on_validation_batch_end",))),
}
METRICS_AT.update({name: (args, {"log_plan": plan}) for name, (args, plan) in PLANS.items()})
# test_logging_in_callbacks_with_log_function (logging.md row 19): a callback's `self.log` with the default options in
# four hooks. name: {hook: (metric, value)}, a callback after MetricsAt.
CALLBACK_LOGS = {
    "callback_logs_defaults": {"on_train_start": ("on_train_start", 1), "on_train_epoch_start": ("on_train_epoch_start", 2),
                               "on_train_batch_end": ("on_train_batch_end", 3),
                               "on_train_epoch_end": ("on_train_epoch_end", 5)},
}
METRICS_AT["callback_logs_defaults"] = ({"limit_train_batches": 1, "limit_val_batches": 1, "max_epochs": 1}, {})


class LogsFrom(L.Callback):
    """`self.log(metric, value)` in each of `logs`' hooks."""

    def __init__(self, logs):
        self.logs = logs
        for hook, (metric, value) in logs.items():
            setattr(self, hook, lambda *_, m=metric, v=value: self.log(m, float(v)))


def metrics_at():
    out = {}
    for name, (args, module) in METRICS_AT.items():
        L.seed_everything(0, verbose=False)
        cb = MetricsAt()
        logs = CALLBACK_LOGS.get(name, {})
        trainer = L.Trainer(enable_checkpointing=False, callbacks=[cb, LogsFrom(logs)], **QUIET, **args)
        model = Regression()
        for k, v in module.items():
            setattr(model, k, v)
        trainer.fit(model, datamodule=Points())
        out[name] = {"trainer": args, "module": module, "seen": cb.seen,
                     "callback_logs": {h: [m, v] for h, (m, v) in logs.items()}}
    return out


# The CSV logger's rows (docs/lightning-tests/logging.md): each row's step, epoch and values. name: (Trainer arguments,
# module attributes).
ROWS = {
    "rows_plain": ({"max_epochs": 2, "log_every_n_steps": 2, "val_check_interval": 0.5}, {}),
    # a logged `step` is the row's step, and such a row has no epoch column (Lightning's log_metrics)
    "rows_logged_step": ({"max_epochs": 2, "log_every_n_steps": 2}, {"log_step": True}),
    # test_validation_step_log_with_tensorboard (logging.md row 38): the rows of forked, epoch-only and step-only values
    "rows_validation_step_log": (VALIDATION_STEP_LOG, {"log_plan": VALIDATION_STEP_PLAN}),
    # test_tensorboard_with_accumulated_gradients (loggers.md row 26): a forked value's rows under accumulation
    "rows_accumulate_forked": ({"max_epochs": 3, "accumulate_grad_batches": 2, "limit_val_batches": 0, "log_every_n_steps": 1},
                               {"log_plan": [{"hook": "training_step", "name": "foo", "value": "batch_idx", "on_step": True,
                                              "on_epoch": True}]}),
    # test_adding_step_key (loggers.md row 33): `step` logged at the epoch ends is those rows' step
    "rows_logged_step_at_epoch_ends": ({"max_epochs": 2, "log_every_n_steps": 2}, {"log_plan": [
        {"hook": "on_train_epoch_end", "name": "step", "value": "epoch"},
        {"hook": "on_train_epoch_end", "name": "train_acc", "value": 0.25},
        {"hook": "on_validation_epoch_end", "name": "step", "value": "epoch"},
        {"hook": "on_validation_epoch_end", "name": "val_acc", "value": 0.5}]}),
    # one name from two hooks is two metrics; the later one's value is read (logging.md differences 3, 4)
    "rows_dup_hooks_mean": ({"max_epochs": 2, "log_every_n_steps": 2}, {"dup_hooks": "mean"}),
    "rows_dup_hooks_sum": ({"max_epochs": 2, "log_every_n_steps": 2}, {"dup_hooks": "sum"}),
    # a value logged at some batches only stays in the rows of the later ones (Lightning's forward cache), in
    # training and in validation steps alike
    "rows_sparse": ({"max_epochs": 2, "log_every_n_steps": 1, "val_check_interval": 0.5}, {"sparse_log": True}),
    # gradient accumulation: rows at the batches that step only (docs/lightning-tests/loggers.md row 26), the last
    # batch of an epoch stepping whatever the window
    "rows_accumulate": ({"max_epochs": 3, "accumulate_grad_batches": 3, "log_every_n_steps": 1}, {"sparse_log": True}),
    # training_step returning None at even batches: no step there, the logged values still in the rows
    "rows_none_even": ({"max_epochs": 2, "log_every_n_steps": 1}, {"none_even": True}),
    # test__training_step__log_max_reduce_fx (logging.md row 13): batch_idx reduced over the epoch by min, max, sum and
    # mean, in training and validation
    **{f"rows_reduce_{fx}": ({"max_epochs": 2, "log_every_n_steps": 2}, {"reduce_probe": fx})
       for fx in ("min", "max", "sum", "mean")},
    # test_log_metrics_epoch_step_values (logging.md row 26): a forked value's step and epoch rows
    "rows_forked_value": ({"max_epochs": 2, "limit_train_batches": 2, "limit_val_batches": 0, "log_every_n_steps": 1},
                          {"log_plan": [{"hook": "training_step", "name": "foo", "value": 0.0, "on_step": True,
                                         "on_epoch": True}]}),
    # test_log_on_train_start (logging.md row 27): logged once, in epoch 0's first row
    "rows_log_on_train_start": ({"max_epochs": 2, "limit_train_batches": 1, "limit_val_batches": 0,
                                 "log_every_n_steps": 1},
                                {"log_plan": [{"hook": "on_train_start", "name": "foo", "value": 123}]}),
}


def rows():
    from lightning.pytorch.loggers import CSVLogger
    out = {}
    for name, (args, module_args) in ROWS.items():
        with tempfile.TemporaryDirectory() as d:
            L.seed_everything(0, verbose=False)
            model = Regression()
            for k, v in module_args.items():
                setattr(model, k, v)
            logger = CSVLogger(d, name="lightning_logs")
            trainer = L.Trainer(enable_checkpointing=False, logger=logger, enable_progress_bar=False,
                                enable_model_summary=False, accelerator="cpu", devices=1, **args)
            trainer.fit(model, datamodule=Points())
            import csv
            with open(os.path.join(logger.log_dir, "metrics.csv")) as f:
                table = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
        out[name] = {"trainer": args, "module": module_args, "rows": table}
    return out


# Several evaluation DataLoaders (Lightning's sequential CombinedLoader): the names with `/dataloader_idx_<i>`, the
# rows and callback metrics a fit leaves, trainer.validate/test's results per DataLoader. name: (Trainer arguments,
# module attributes, the second DataLoader's points).
DATALOADERS = {
    "two_val_loaders": ({"max_epochs": 2, "val_check_interval": 0.5, "log_every_n_steps": 2},
                        {"val_on_step": True, "loader_names": True}, 6),
    "two_val_loaders_limited": ({"max_epochs": 1, "limit_val_batches": 1, "num_sanity_val_steps": 1}, {}, 5),
    # a value logged at the epoch's end weighs 1, not the last batch's size (3 here; float32 v * 3 / 3 != v)
    "two_val_loaders_epoch_hook": ({"max_epochs": 1, "val_check_interval": 0.5}, {"epoch_end_value": 0.7837985754013062}, 6),
    # test_eval_epoch_only_logging and test_eval_epoch_logging (logging.md rows 31, 34): values logged only at the
    # evaluation epoch's end are the run's results (one DataLoader)
    "epoch_end_only_results": ({"max_epochs": 1}, {"log_plan": [
        entry for hook in ("on_validation_epoch_end", "on_test_epoch_end")
        for entry in planned(hook, ["c"], value=2, on_epoch=True, prog_bar=True) + planned(hook, ["d/e/f"], value=2)]},
                               None),
    # test_multi_dataloaders_add_suffix_properly, one DataLoader (logging.md row 35): a forked test value's results
    "forked_test_value_one_loader": ({"max_epochs": 1}, {"log_plan": [
        {"hook": "test_step", "name": "t", "value": "batch_idx", "on_step": True, "on_epoch": True}]}, None),
}


def dataloaders():
    import csv
    from lightning.pytorch.loggers import CSVLogger
    out = {}
    for name, (args, module_args, second) in DATALOADERS.items():
        with tempfile.TemporaryDirectory() as d:
            L.seed_everything(0, verbose=False)
            model = Regression()
            for k, v in module_args.items():
                setattr(model, k, v)
            cb = MetricsAt()
            logger = CSVLogger(d, name="lightning_logs")
            trainer = L.Trainer(enable_checkpointing=False, logger=logger, callbacks=[cb], enable_progress_bar=False,
                                enable_model_summary=False, accelerator="cpu", devices=1, **args)
            trainer.fit(model, datamodule=Points(second))
            with open(os.path.join(logger.log_dir, "metrics.csv")) as f:
                table = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
            case = {"trainer": args, "module": module_args, "second_val": second, "rows": table, "seen": cb.seen,
                    "train_losses": model.train_losses,
                    "callback_metrics": {k: float(v) for k, v in trainer.callback_metrics.items()}}
            for stage in ("validate", "test"):
                L.seed_everything(0, verbose=False)
                model = Regression()
                for k, v in module_args.items():
                    setattr(model, k, v)
                t = L.Trainer(**QUIET, **{k: v for k, v in args.items() if k.startswith("limit_")})
                results = getattr(t, stage)(model, datamodule=Points(second), verbose=False)
                case[stage] = [{k: float(v) for k, v in r.items()} for r in results]
        out[name] = case
    return out


class Exceptions(L.Callback):
    def __init__(self):
        self.seen = 0

    def on_exception(self, trainer, pl_module, exception):
        self.seen += 1


# A run that fails (Lightning's `_interrupt`): the callbacks' on_exception calls and the rows the CSV logger wrote
# (`finalize("failed")` saves what it holds). name: (Trainer function, Trainer arguments, the (epoch, batch) where
# validation_step, logging val_loss on the step too, fails).
FAILURES = {
    "validate_fails_at_batch_1": ("validate", {}, (0, 1)),
    "fit_fails_in_the_sanity_check": ("fit", {"max_epochs": 1}, (0, 1)),
    "fit_fails_in_the_second_validation": ("fit", {"max_epochs": 3, "log_every_n_steps": 1}, (1, 1)),
}


def failures():
    import csv
    from lightning.pytorch.loggers import CSVLogger
    out = {}
    for name, (fn, args, at) in FAILURES.items():
        with tempfile.TemporaryDirectory() as d:
            L.seed_everything(0, verbose=False)
            model = Counted()
            model.val_on_step = True
            model.fail_val_at = at
            cb = Exceptions()
            logger = CSVLogger(d, name="lightning_logs")
            # OnExceptionCheckpoint saves wherever on_exception runs, validate included; beside it
            # ModelCheckpoint(save_on_exception=True), which saves nothing for a failure in the sanity check
            # (test_model_checkpoint_on_exception_run_condition_on_validation_start)
            saves = os.path.join(d, "saves")
            oe = OnExceptionCheckpoint(dirpath=saves)
            mc = ModelCheckpoint(dirpath=saves, save_on_exception=True)
            trainer = L.Trainer(logger=logger, callbacks=[cb, oe, mc], enable_progress_bar=False,
                                enable_model_summary=False, accelerator="cpu", devices=1, **args)
            try:
                getattr(trainer, fn)(model, datamodule=Points())
                raise AssertionError(f"{name}: the run did not fail")
            except RuntimeError as e:
                assert "fails at" in str(e), e
            path = os.path.join(logger.log_dir, "metrics.csv")
            rows = []
            if os.path.exists(path):
                with open(path) as f:
                    rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
            saved = {}
            for f in sorted(os.listdir(saves)) if os.path.isdir(saves) else []:
                c = torch.load(os.path.join(saves, f), weights_only=False)
                loop = "fit_loop" if fn == "fit" else "validate_loop"
                progress = c["loops"][loop]["epoch_loop.val_loop.batch_progress" if fn == "fit" else "batch_progress"]
                saved[f] = {"epoch": c["epoch"], "global_step": c["global_step"],
                            "optimizers": len(c.get("optimizer_states", [])), "val_batch_progress": progress["total"]}
        out[name] = {"fn": fn, "trainer": args, "fail_at": list(at), "rows": rows, "on_exception": cb.seen,
                     "saved": saved}
    return out


# `trainer.test(...)` after `trainer.fit(...)` on the same Trainer (docs/lightning-tests/loggers.md difference 12,
# row 41): the test row in the fit's metrics.csv at its last step and epoch, and the test's results. name: (Trainer
# arguments, ckpt_path: None tests the weights as trained; "best" the file of ModelCheckpoint(monitor="val_loss",
# mode="max"), the first epoch's, so not the weights as trained).
FIT_THEN_TEST = {
    "fit_then_test_current": ({"max_epochs": 2, "log_every_n_steps": 2}, None),
    "fit_then_test_best": ({"max_epochs": 4, "log_every_n_steps": 3}, "best"),
}


def fit_then_test():
    import csv
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    out = {}
    for name, (args, ckpt) in FIT_THEN_TEST.items():
        with tempfile.TemporaryDirectory() as d:
            L.seed_everything(0, verbose=False)
            model, data = Regression(), Points()
            logger = CSVLogger(d, name="lightning_logs")
            callbacks = [ModelCheckpoint(dirpath=os.path.join(d, "ck"), monitor="val_loss", mode="max")] if ckpt else []
            trainer = L.Trainer(enable_checkpointing=bool(ckpt), callbacks=callbacks, logger=logger,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
                                **args)
            trainer.fit(model, datamodule=data)
            results = trainer.test(model, datamodule=data, ckpt_path=ckpt, verbose=False)
            with open(os.path.join(logger.log_dir, "metrics.csv")) as f:
                table = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
            best = os.path.basename(callbacks[0].best_model_path) if ckpt else None
        out[name] = {"trainer": args, "ckpt": ckpt, "rows": table, "best": best,
                     "test": [{k: float(v) for k, v in r.items()} for r in results]}
    return out


def fx_validator():
    """Lightning's table of where `self.log` may be called and with which on_step/on_epoch (test_fx_validator,
    docs/lightning-tests/logging.md row 1): hook name -> None (no logging) or the allowed values and defaults."""
    from lightning.pytorch.trainer.connectors.logger_connector.fx_validator import _FxValidator
    return {name: None if o is None else {"allowed_on_step": list(o["allowed_on_step"]),
                                          "allowed_on_epoch": list(o["allowed_on_epoch"]),
                                          "default_on_step": o["default_on_step"], "default_on_epoch": o["default_on_epoch"]}
            for name, o in _FxValidator.functions.items()}


class LogsAtEnds(L.Callback):
    """Writes `{<stage>: 1.0}` straight to the logger at each stage's end hook (Lightning's
    test_logger_after_fit_predict_test_calls)."""

    def on_fit_end(self, trainer, pl_module):
        trainer.logger.log_metrics({"fit": 1.0})

    def on_validation_end(self, trainer, pl_module):
        trainer.logger.log_metrics({"validate": 1.0})

    def on_test_end(self, trainer, pl_module):
        trainer.logger.log_metrics({"test": 1.0})

    def on_predict_end(self, trainer, pl_module):
        trainer.logger.log_metrics({"predict": 1.0})


def stage_logs():
    """Each of fit, validate, test and predict on a Trainer of its own with a CSVLogger and LogsAtEnds (logging.md
    row 51): the files of its version directory and metrics.csv's rows."""
    import csv
    from lightning.pytorch.loggers import CSVLogger
    out = {}
    for stage in ("fit", "validate", "test", "predict"):
        with tempfile.TemporaryDirectory() as d:
            L.seed_everything(0, verbose=False)
            logger = CSVLogger(d, name="lightning_logs")
            trainer = L.Trainer(max_epochs=1, logger=logger, callbacks=[LogsAtEnds()], enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
            quiet = {} if stage in ("fit", "predict") else {"verbose": False}
            getattr(trainer, stage)(Regression(), datamodule=Points(), **quiet)
            version = os.path.join(d, "lightning_logs", "version_0")
            files = sorted(os.listdir(version)) if os.path.isdir(version) else None
            rows = None
            if files and "metrics.csv" in files:
                with open(os.path.join(version, "metrics.csv")) as f:
                    rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
        out[stage] = {"files": files, "rows": rows}
    return out


class GradModes(L.Callback):
    """`(torch.is_grad_enabled(), torch.is_inference_mode_enabled())` at each evaluation loop's start hook."""

    def __init__(self):
        self.seen = {}

    def record(self, hook):
        self.seen[hook] = [torch.is_grad_enabled(), torch.is_inference_mode_enabled()]

    def on_validation_start(self, trainer, pl_module):
        self.record("on_validation_start")

    def on_test_start(self, trainer, pl_module):
        self.record("on_test_start")

    def on_predict_start(self, trainer, pl_module):
        self.record("on_predict_start")


def grad_modes():
    """test_inference_mode.py::test_eval_inference_mode (docs/lightning-tests/trainer_flags.md row 23): what
    validate, test and predict run under, with `inference_mode` True and False, under fast_dev_run."""
    out = {}
    for inference_mode in (True, False):
        modes = GradModes()
        for stage in ("validate", "test", "predict"):
            L.seed_everything(0, verbose=False)
            trainer = L.Trainer(fast_dev_run=True, inference_mode=inference_mode, callbacks=[modes], logger=False,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
            quiet = {} if stage == "predict" else {"verbose": False}
            getattr(trainer, stage)(Regression(), datamodule=Points(), **quiet)
        out[str(inference_mode).lower()] = modes.seen
    return out


def main(path):
    out = {"lightning": L.__version__, "cases": {name: run(*case) for name, case in CASES.items()},
           "checkpoints": checkpoints(), "resumes": resumes(), "plateaus": plateaus(), "stops": stops(),
           "metrics_at": metrics_at(), "rows": rows(), "dataloaders": dataloaders(), "failures": failures(),
           "fx_validator": fx_validator(), "fit_then_test": fit_then_test(), "grad_modes": grad_modes(),
           "stage_logs": stage_logs()}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: lightning {L.__version__}, {len(out['cases'])} cases")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/native.json")
