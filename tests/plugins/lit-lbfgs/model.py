"""torch.optim.LBFGS in a LightningModule, both ways Lightning documents it: returned from
`configure_optimizers` (automatic optimization: Lightning's closure re-runs training_step and
backward at each of LBFGS's evaluations) and, with `manual=True`, stepped by the file with a
closure of its own (`opt.step(closure=closure)`); with `line_search="strong_wolfe"`, LBFGS's
line search. A small curve fit whose losses depend on every evaluation the optimizer makes."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class CurveFit(L.LightningModule):
    def __init__(self, manual=False, lr=0.5, line_search=None):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = not manual
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))

    def loss(self, batch):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def training_step(self, batch, batch_idx):
        if self.automatic_optimization:
            loss = self.loss(batch)
            self.log("train_loss", loss)
            return loss
        opt = self.optimizers()

        def closure():
            loss = self.loss(batch)
            opt.zero_grad()
            self.manual_backward(loss)
            return loss

        loss = opt.step(closure=closure)
        self.log("train_loss", loss)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch))

    def configure_optimizers(self):
        return torch.optim.LBFGS(self.parameters(), lr=self.hparams.lr, max_iter=4, history_size=3, line_search_fn=self.hparams.line_search)


class Curve(L.LightningDataModule):
    def setup(self, stage):
        x = torch.rand(96, 2) * 2 - 1
        y = (x[:, :1] * 3).sin() + x[:, 1:] ** 2 + 0.05 * torch.randn(96, 1)
        self.train, self.val = TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=16)
