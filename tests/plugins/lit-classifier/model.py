"""An ordinary Lightning classifier, as written for Lightning 2.6 (nothing lthost-specific):
top-level precision settings, a LightningDataModule splitting blobs with `random_split`
fractions and a seeded generator, torchmetrics F1Score, MulticlassAccuracy and AUROC objects,
`log_dict` with metric objects on step and epoch, the learning rate read from
`self.optimizers()`, a `@torch.no_grad()` validation_step collecting outputs for
`on_validation_epoch_end`, label smoothing, AdamW with decay/no-decay parameter groups and
ReduceLROnPlateau monitoring val_loss. lthost's run gives Lightning 2.6.6's losses and metrics
(tests/reference/lightning_files_reference.py)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split
import torchmetrics

torch.set_float32_matmul_precision("medium")
torch.backends.cudnn.benchmark = True


class Net(nn.Module):
    def __init__(self, d_in=16, hidden=32, n_classes=4, p=0.1):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(p), nn.LayerNorm(hidden))
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.head(self.body(x))


class LitClassifier(L.LightningModule):
    def __init__(self, lr=1e-2, weight_decay=1e-4, n_classes=4, oom_above=None):
        super().__init__()
        self.save_hyperparameters()
        self.model = Net(n_classes=n_classes)
        self.example_input_array = torch.zeros(2, 16)
        self.train_f1 = torchmetrics.F1Score(task="multiclass", num_classes=n_classes, average="macro")
        self.val_acc = torchmetrics.classification.MulticlassAccuracy(num_classes=n_classes)
        self.val_auroc = torchmetrics.AUROC(task="multiclass", num_classes=n_classes)
        self.outputs = []

    def forward(self, x):
        return self.model(x)

    def _shared_step(self, batch):
        x, y = batch
        x = x.to(self.device)
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.1)
        return loss, logits, y

    def training_step(self, batch, batch_idx):
        if self.hparams.oom_above is not None and len(batch[0]) > self.hparams.oom_above:
            # What CUDA raises when a batch does not fit: the batch-size finder's cue to go smaller.
            raise RuntimeError(f"CUDA out of memory. Tried to allocate a batch of {len(batch[0])} (oom_above={self.hparams.oom_above})")
        loss, logits, y = self._shared_step(batch)
        self.train_f1(logits.argmax(dim=-1), y)
        self.log("train_loss", loss, prog_bar=True)
        self.log_dict({"train_f1": self.train_f1, "train_loss_avg": loss}, on_step=True, on_epoch=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True)
        if self.global_step == 0:
            self.print(f"epoch {self.current_epoch} step {self.global_step} device {self.device}")
        return {"loss": loss}

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        loss, logits, y = self._shared_step(batch)
        probs = logits.softmax(-1)
        self.val_acc.update(probs, y)
        self.val_auroc.update(probs, y)
        self.outputs.append(loss.detach())
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)

    def on_validation_epoch_end(self):
        mean = torch.stack(self.outputs).mean()
        self.log("val_mean", mean)
        self.log("val_acc", self.val_acc.compute())
        self.log("val_auroc", self.val_auroc.compute())
        self.val_acc.reset()
        self.val_auroc.reset()
        self.outputs.clear()

    def test_step(self, batch, batch_idx):
        loss, logits, y = self._shared_step(batch)
        self.log("test_loss", loss)

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        x, _ = batch
        return self(x).argmax(-1)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr, betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}}


class Blobs(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        centers = torch.randn(4, 16, generator=g) * 0.3
        y = torch.randint(0, 4, (600,), generator=g)
        x = centers[y] + torch.randn(600, 16, generator=g)
        full = TensorDataset(x, y)
        self.train_set, self.val_set, self.test_set = random_split(full, [0.7, 0.15, 0.15], generator=torch.Generator().manual_seed(42))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=0, pin_memory=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=64)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=64)
