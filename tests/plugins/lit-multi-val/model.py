"""A Lightning file with several evaluation DataLoaders, as Lightning's docs write one:
`val_dataloader` returns a list (a clean and a noisy set, different batch sizes),
`test_dataloader` a dict; `validation_step`, `test_step` and the batch hooks take
`dataloader_idx`; what is logged there is named `<name>/dataloader_idx_<i>`, or as given with
`add_dataloader_idx=False` (a torchmetrics object per DataLoader too; `reduce_fx` spelled
"avg" and "SUM", as Lightning takes them). lthost's run gives Lightning 2.6.6's losses and metrics
(tests/reference/lightning_files_reference.py)."""

import lightning as L
import torch
import torchmetrics
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class MultiVal(L.LightningModule):
    def __init__(self, lr=0.05, signature="ok"):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
        self.seen = [0, 0]
        self.val_accs = nn.ModuleList([torchmetrics.classification.MulticlassAccuracy(num_classes=3) for _ in range(2)])
        # Signatures Lightning refuses (its test_invalid_dataloader_idx_raises_step): a step
        # without `dataloader_idx` beside several DataLoaders, one requiring it beside one.
        if signature == "no_idx":
            self.validation_step = self.validation_step_without_idx
        elif signature == "required_idx":
            self.validation_step = self.validation_step_requiring_idx

    def validation_step_without_idx(self, batch, batch_idx):
        return self.validation_step_requiring_idx(batch, batch_idx, 0)

    def validation_step_requiring_idx(self, batch, batch_idx, dataloader_idx):
        return MultiVal.validation_step(self, batch, batch_idx, dataloader_idx)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), on_step=True, on_epoch=True)
        acc = (logits.argmax(-1) == y).float().mean()
        self.log(f"val_acc_{dataloader_idx}", acc, add_dataloader_idx=False, reduce_fx="avg")
        self.val_accs[dataloader_idx](logits, y)
        self.log("val_macc", self.val_accs[dataloader_idx])

    def on_validation_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
        self.seen[dataloader_idx] += len(batch[0])

    def on_validation_epoch_end(self):
        self.log("val_seen", float(sum(self.seen)), reduce_fx="SUM")
        self.seen = [0, 0]

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        self.log_dict({"test_loss": F.cross_entropy(self(x), y)})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class TwoSets(L.LightningDataModule):
    def __init__(self, val_loaders=2):
        super().__init__()
        self.val_loaders = val_loaders

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(3)
        w = torch.randn(8, 3, generator=g)
        x = torch.randn(160, 8, generator=g)
        y = (x @ w).argmax(-1)
        self.train_set = TensorDataset(x[:96], y[:96])
        self.clean = TensorDataset(x[96:128], y[96:128])
        noisy = x[128:] + 0.5 * torch.randn(32, 8, generator=g)
        self.noisy = TensorDataset(noisy, y[128:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=16, shuffle=True)

    def val_dataloader(self):
        loaders = [DataLoader(self.clean, batch_size=16), DataLoader(self.noisy, batch_size=10)]
        return loaders[: self.val_loaders]

    def test_dataloader(self):
        return {"clean": DataLoader(self.clean, batch_size=8), "noisy": DataLoader(self.noisy, batch_size=32)}
