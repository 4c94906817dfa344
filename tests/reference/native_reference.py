"""The native test module (host/src/testing.rs: `Regression` on `Points`) written as a
LightningModule and LightningDataModule and trained by Lightning itself: the losses, the
final weights and where EarlyStopping stops, for the in-file loop tests
(host/src/loops/fit.rs) to compare with. Same draws in the same order: the weight at
`__init__`, the points at `setup`, the samplers' seeds from the global generator.

    .venv/bin/python tests/reference/native_reference.py tests/reference/native.json
"""

import json
import logging
import sys
import warnings

import torch
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

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
        "train_losses": model.train_losses,
        "weights": model.weight.detach().flatten().tolist() + model.bias.detach().tolist(),
        "callback_metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }


def main(path):
    out = {"lightning": L.__version__, "cases": {name: run(*case) for name, case in CASES.items()}}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: lightning {L.__version__}, {len(out['cases'])} cases")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/native.json")
