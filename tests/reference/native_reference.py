"""The native test module (host/src/testing.rs: `Regression` on `Points`) written as a
LightningModule and LightningDataModule and trained by Lightning itself: the losses, the
final weights, and where and why EarlyStopping stops, for the in-file loop tests
(host/src/loops/fit.rs) to compare with. Same draws in the same order: the weight at
`__init__`, the points at `setup`, the samplers' seeds from the global generator.

    .venv/bin/python tests/reference/native_reference.py tests/reference/native.json
"""

import json
import logging
import os
import sys
import tempfile
import warnings

import torch
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
torch.set_num_threads(1)


class Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(1, 3) * 0.1)
        self.bias = torch.nn.Parameter(torch.zeros(1))
        self.train_losses = []

    def loss(self, batch):
        x, y = batch
        return ((x @ self.weight.t() + self.bias - y) ** 2).mean()

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train_loss", loss, on_epoch=True)
        self.train_losses.append(loss.item())
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)


def points(n):
    x = torch.randn(n, 3)
    noise = torch.randn(n, 1) * 0.1
    return x, x @ torch.tensor([1.0, -2.0, 0.5]).reshape(3, 1) + 0.3 + noise


class Points(L.LightningDataModule):
    def setup(self, stage):
        if not hasattr(self, "train"):
            self.train = points(16)
            self.val = points(8)

    def train_dataloader(self):
        return DataLoader(TensorDataset(*self.train), batch_size=4, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(*self.val), batch_size=4)


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
}


def run(trainer_args, es_args):
    L.seed_everything(0, verbose=False)
    model = Regression()
    callbacks = [EarlyStopping(**es_args)] if es_args else []
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=callbacks, **trainer_args)
    trainer.fit(model, datamodule=Points())
    return {
        "trainer": trainer_args,
        "early_stopping": es_args,
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


def main(path):
    out = {"lightning": L.__version__, "cases": {name: run(*case) for name, case in CASES.items()},
           "checkpoints": checkpoints()}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: lightning {L.__version__}, {len(out['cases'])} cases")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/native.json")
