"""A user-written optimizer in a Lightning file: Lion (Chen et al., 2023, "Symbolic Discovery
of Optimization Algorithms"), a `torch.optim.Optimizer` subclass whose `step` is tensor code
with per-parameter state, driving a small MLP with weight decay on the weights only and a
cosine schedule; it logs `trainer.estimated_stepping_batches`, counts the batches that
`trainer.is_last_batch` marks and logs what the batch hooks get. lthost runs the step in the plugin (the host steps it where it steps its own
optimizers) and keeps its state in checkpoints; the same file runs in Lightning 2.6.6
(tests/reference/lightning_files_reference.py)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader, TensorDataset


class Lion(Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(p)
                exp_avg = state["exp_avg"]
                beta1, beta2 = group["betas"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                update = exp_avg * beta1 + grad * (1 - beta1)
                p.add_(update.sign_(), alpha=-group["lr"])
                exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
        return loss


class LionMlp(L.LightningModule):
    def __init__(self, lr=3e-4, weight_decay=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        self.last_batches = getattr(self, "last_batches", 0) + int(self.trainer.is_last_batch)
        self.log("last_batches", float(self.last_batches))
        self.log("stepping_batches", self.stepping_batches)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("val_loss", loss)
        return loss

    # The batch hooks get the batch, the step's outputs and the loss as Lightning passes them.
    def on_train_batch_start(self, batch, batch_idx):
        self.batch_rows = batch[0].shape[0]

    def on_before_backward(self, loss):
        self.log("backward_loss", loss)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.log("outputs_loss", outputs["loss"])
        self.log("batch_target_mean", batch[1].mean() + self.batch_rows)

    def on_validation_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
        self.log("val_outputs", outputs * batch[0].shape[0])

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if n.endswith("weight")]
        no_decay = [p for n, p in self.named_parameters() if not n.endswith("weight")]
        opt = Lion([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        # What OneCycleLR's total_steps is set from in Lightning's docs (logged, not used: a
        # one-cycle schedule made for 2 epochs cannot resume into 4, in Lightning either).
        self.stepping_batches = float(self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)}


class Regression(L.LightningDataModule):
    def setup(self, stage):
        x = torch.randn(640, 16)
        y = (x[:, :4].sum(1, keepdim=True) - x[:, 4:8].pow(2).mean(1, keepdim=True)).tanh()
        self.train, self.val = TensorDataset(x[:512], y[:512]), TensorDataset(x[512:], y[512:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=64)
