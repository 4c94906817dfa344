"""The digits MLP in Python: plugins/digits-mlp, written as a plain Lightning file (`import
torch`, `import lightning as L`, no lthost API), built with `lthost build model.py`. The same
model with the same seed gives the same losses as the Rust plugin (every op runs in the host)."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def probe_ops():
    """torch from a plugin (tests/e2e/languages.rs): an operator's error is a RuntimeError the
    plugin catches; grad mode is torch's context manager; overloads as torch resolves them."""
    a = torch.tensor([[1.0, 2.0, 3.0]])
    try:
        torch.mm(a, a)
    except RuntimeError as e:
        print(f"probe caught: {e}", file=sys.stderr)
    print(f"probe masked_fill: {a.masked_fill(a > 1.5, -1.0).flatten().tolist()}", file=sys.stderr)
    w = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        tracked = (w * 2.0).requires_grad
    print(f"probe no_grad: tracked={tracked} after={(w * 2.0).requires_grad}", file=sys.stderr)
    s = a.sum(1, keepdim=True)
    values, indices = a.max(1)
    print(f"probe typed: {s.flatten().tolist()} {s.size(1)} {values.tolist()} {indices.tolist()} "
          f"{F.leaky_relu(-a, negative_slope=0.5).flatten().tolist()} {(a ** 2).flatten().tolist()}", file=sys.stderr)
    try:
        a.mm(a)
    except RuntimeError as e:
        print(f"probe typed caught: {e}", file=sys.stderr)


class DigitsMlp(L.LightningModule):
    def __init__(self, hidden=128, dropout=0.1, lr=0.003, batch_size=32, probe_calls=0, probe_errors=False):
        super().__init__()
        self.save_hyperparameters()
        if probe_errors:
            probe_ops()
        self.probe_calls = probe_calls  # host calls per step for their cost alone (make bench)
        self.hidden = nn.Linear(64, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.out(self.dropout(self.hidden(x).relu()))

    def training_step(self, batch, batch_idx):
        x, y = batch
        for _ in range(self.probe_calls):
            x.numel()
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def evaluate(self, batch, prefix):
        x, y = batch
        logits = self(x)
        self.log(f"{prefix}_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log(f"{prefix}_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self.evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test")

    def predict_step(self, batch, batch_idx):
        return self(batch[0]).softmax(-1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class Digits(L.LightningDataModule):
    """digits.safetensors from the granted data directory: uint8 pixels 0..16, labels."""

    def __init__(self, batch_size=32, data_file="digits.safetensors"):
        super().__init__()
        self.batch_size, self.data_file = batch_size, data_file

    def setup(self, stage):
        self.splits = torch.load(self.data_file)

    def loader(self, name, shuffle):
        x = self.splits[f"{name}_images"].float() / 16.0
        return DataLoader(TensorDataset(x, self.splits[f"{name}_labels"]), batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self):
        return self.loader("train", True)

    def val_dataloader(self):
        return self.loader("val", False)

    def test_dataloader(self):
        return self.loader("test", False)
