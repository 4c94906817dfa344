"""A Lightning file run as its author runs it, `python model.py`: the `__main__` block seeds,
reads its settings from argparse defaults, makes the module and the data module with its own
arguments, and gives the Trainer its epochs, batch limit, gradient clipping, logger and
callbacks (an EarlyStopping that stops the run early, a ModelCheckpoint on val_loss).
`lthost build` keeps what the block gives Lightning as the plugin's defaults, so a plain
`lthost fit model.wasm` trains as `python model.py` does (tests/e2e/main_block.rs, against
tests/reference/main_block_reference.py, which runs this file's block in Lightning)."""

import argparse

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

MAX_EPOCHS = 12


class Regressor(L.LightningModule):
    def __init__(self, lr=0.1, hidden=8):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class Points(L.LightningDataModule):
    def __init__(self, batch_size=64):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(3)
        x = torch.randn(400, 4, generator=g)
        y = (x * torch.tensor([1.0, -2.0, 0.5, 3.0])).sum(1, keepdim=True).sin()
        self.train_set, self.val_set = TensorDataset(x[:320], y[:320]), TensorDataset(x[320:], y[320:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=40)


def main(args):
    L.seed_everything(args.seed)
    model = Regressor(args.lr, hidden=2 * 8)
    data = Points(batch_size=args.batch_size)
    callbacks = [
        # Validation loss rising is "improving" here, so the run stops after two epochs without (6 of its 12).
        EarlyStopping(monitor="val_loss", mode="max", patience=2),
        ModelCheckpoint(dirpath="checkpoints", monitor="val_loss", filename="best-{epoch}"),
    ]
    trainer = L.Trainer(max_epochs=MAX_EPOCHS, accelerator="cpu", devices=1, limit_train_batches=8,
                        gradient_clip_val=0.25, log_every_n_steps=1, callbacks=callbacks,
                        logger=CSVLogger("logs", name="regressor"), enable_progress_bar=False,
                        default_root_dir="runs")
    trainer.fit(model, datamodule=data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)
    main(parser.parse_args())
