"""A Lightning file as it runs with `strategy="ddp"`: a BatchNorm regressor whose values are
logged per rank and with `sync_dist=True` (a step's mean, an epoch's mean, max and sum across
the ranks), which reads `self.trainer.world_size` and `self.global_rank`, and validates on its
share of the data (tests/e2e/ddp.rs against Lightning 2.6.6's ddp run of this same file,
tests/reference/ddp_reference.py). `manual=True`: the same steps in manual optimization.
`unused=True`: a layer rank 0 uses at every step and rank 1 only at even steps, and one no
rank uses (DDP needs `strategy="ddp_find_unused_parameters_true"` for them)."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning as L


class DdpRegressor(L.LightningModule):
    def __init__(self, lr=0.05, manual=False, unused=False):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = not manual
        self.net = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
        if unused:
            self.sometimes = nn.Linear(6, 1)
            self.never = nn.Linear(6, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        if self.hparams.unused and (self.global_rank == 0 or batch_idx % 2 == 0):
            out = out + self.sometimes(x)
        loss = F.mse_loss(out, y)
        if self.hparams.manual:
            opt = self.optimizers()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        self.log("train_loss", loss)
        self.log("train_loss_synced", loss, sync_dist=True)
        self.log("loss_mean", loss, on_step=False, on_epoch=True, sync_dist=True)
        self.log("loss_max", loss, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max")
        self.log("rank_sum", float(self.global_rank), on_step=False, on_epoch=True, sync_dist=True, reduce_fx="sum")
        self.log("world_size", float(self.trainer.world_size), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("val_loss", loss, sync_dist=True)
        self.log("val_loss_rank0", loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class DdpData(L.LightningDataModule):
    def setup(self, stage):
        x = torch.randn(90, 6)
        y = x @ torch.randn(6, 1) + 0.1 * torch.randn(90, 1)
        self.train, self.val = TensorDataset(x[:70], y[:70]), TensorDataset(x[70:], y[70:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=8)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=6)
