"""Manual optimization in a Lightning file, with the plugin's own optimizer and schedulers:
two optimizers (Lion, user-written, for the encoder; torch's SGD for the head), stepped by
the file in `training_step` with `manual_backward`, `toggle_optimizer`, gradient
accumulation over two batches, and their schedulers (a LambdaLR stepped per step, a StepLR
at each epoch's end) stepped by the file too. The same file runs in Lightning 2.6.6
(tests/reference/lightning_files_reference.py)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader, TensorDataset


class Lion(Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p)
                exp_avg = state["exp_avg"]
                beta1, beta2 = group["betas"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_((exp_avg * beta1 + p.grad * (1 - beta1)).sign_(), alpha=-group["lr"])
                exp_avg.mul_(beta2).add_(p.grad, alpha=1 - beta2)


class TwoOptimizers(L.LightningModule):
    def __init__(self, bad_return=False):
        super().__init__()
        self.automatic_optimization = False
        # training_step returns an int, which Lightning refuses in manual optimization.
        self.bad_return = bad_return
        self.encoder = nn.Sequential(nn.Linear(8, 32), nn.Tanh())
        self.head = nn.Linear(32, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        enc_opt, head_opt = self.optimizers()
        enc_sched = self.lr_schedulers()[0]
        self.toggle_optimizer(enc_opt)
        loss = F.mse_loss(self.head(self.encoder(x)), y)
        self.manual_backward(loss / 2)
        if (batch_idx + 1) % 2 == 0:
            enc_opt.step()
            enc_opt.zero_grad()
            enc_sched.step()
        self.untoggle_optimizer(enc_opt)
        head_loss = F.mse_loss(self.head(self.encoder(x).detach()), y)
        self.manual_backward(head_loss)
        head_opt.step()
        head_opt.zero_grad()
        self.log("train_loss", loss)
        self.log("head_loss", head_loss)
        if self.bad_return:
            return 5
        return {"loss": loss, "head": head_loss}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # Manual optimization's outputs: the step's dict, its "loss" detached.
        self.log("outputs_sum", outputs["loss"] + outputs["head"] + float(outputs["loss"].requires_grad))

    def on_train_epoch_end(self):
        self.lr_schedulers()[1].step()

    def configure_optimizers(self):
        enc = Lion(self.encoder.parameters(), lr=1e-3, weight_decay=0.01)
        head = torch.optim.SGD(self.head.parameters(), lr=0.05, momentum=0.9)
        return [enc, head], [torch.optim.lr_scheduler.LambdaLR(enc, lambda s: 1.0 / (1 + 0.1 * s)), torch.optim.lr_scheduler.StepLR(head, 1, gamma=0.5)]


class Data(L.LightningDataModule):
    def setup(self, stage):
        x = torch.randn(256, 8)
        self.train = TensorDataset(x, x[:, :3].sum(1, keepdim=True).sin())

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16, shuffle=True)
