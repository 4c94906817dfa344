"""The MNIST classifier of Lightning's "MNIST hello world" example, as written there (an MLP
over 28×28 images, log-softmax and NLL loss, torchmetrics Accuracy updated in the evaluation
steps and logged as a metric object), with a training accuracy called per step as well; the
data: 28×28 noise images with a band of rows brightened by the label, in place of
torchvision's MNIST download (a plugin reads no network). Plain `torch`, `torchmetrics` and
`lightning` imports; the same file runs in Lightning 2.6.6
(tests/reference/lightning_files_reference.py)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split
from torchmetrics import Accuracy


class LitMNIST(L.LightningModule):
    def __init__(self, hidden_size=64, learning_rate=2e-4):
        super().__init__()
        self.hidden_size = hidden_size
        self.learning_rate = learning_rate
        self.num_classes = 10
        self.dims = (1, 28, 28)
        channels, width, height = self.dims
        self.model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * width * height, hidden_size),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden_size, self.num_classes),
        )
        self.train_accuracy = Accuracy(task="multiclass", num_classes=10)
        self.val_accuracy = Accuracy(task="multiclass", num_classes=10)
        self.test_accuracy = Accuracy(task="multiclass", num_classes=10)

    def forward(self, x):
        x = self.model(x)
        return F.log_softmax(x, dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.nll_loss(logits, y)
        self.train_accuracy(logits, y)
        self.log("train_loss", loss)
        self.log("train_acc", self.train_accuracy, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.nll_loss(logits, y)
        preds = torch.argmax(logits, dim=1)
        self.val_accuracy.update(preds, y)
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_acc", self.val_accuracy, prog_bar=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.nll_loss(logits, y)
        preds = torch.argmax(logits, dim=1)
        self.test_accuracy.update(preds, y)
        self.log("test_loss", loss, prog_bar=True)
        self.log("test_acc", self.test_accuracy, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class BandImages(L.LightningDataModule):
    """Noise images; label k brightens rows 2k + 4 .. 2k + 6."""

    def __init__(self, n=1200, batch_size=64):
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def setup(self, stage=None):
        x = torch.rand(self.n, 1, 28, 28) * 0.5
        y = torch.randint(0, 10, (self.n,))
        rows = torch.arange(28).view(1, 28)
        band = ((rows >= 2 * y.view(-1, 1) + 4) & (rows < 2 * y.view(-1, 1) + 6)).float()
        x = x + 0.5 * band.view(self.n, 1, 28, 1)
        full = TensorDataset(x, y)
        self.mnist_train, self.mnist_val, self.mnist_test = random_split(full, [1000, 100, 100], generator=torch.Generator().manual_seed(42))

    def train_dataloader(self):
        # Persistent workers: torch draws the DataLoader iterator's base seed on the first
        # epoch only (from the second, the shuffled order depends on it).
        return DataLoader(self.mnist_train, batch_size=self.batch_size, shuffle=True, num_workers=2, persistent_workers=True)

    def val_dataloader(self):
        return DataLoader(self.mnist_val, batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.mnist_test, batch_size=self.batch_size)
