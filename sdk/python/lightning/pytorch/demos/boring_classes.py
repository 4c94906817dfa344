"""`lightning.pytorch.demos.boring_classes`: the small models and datasets Lightning's tests and
bug reports subclass (Lightning 2.6.6's, the same layers, draws, losses and optimizers, so a
file built on them trains as it does in Lightning). `IterableBoringDataModule` (several train
DataLoaders combined) is not here."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from ..core import LightningDataModule, LightningModule


class RandomDictDataset(Dataset):
    """`length` rows of `size` normal draws; item i is {"a": row, "b": row + 2}."""

    def __init__(self, size, length):
        self.len = length
        self.data = torch.randn(length, size)

    def __getitem__(self, index):
        a = self.data[index]
        return {"a": a, "b": a + 2}

    def __len__(self):
        return self.len


class RandomDataset(Dataset):
    """`length` rows of `size` normal draws, drawn when it is made."""

    def __init__(self, size, length):
        self.len = length
        self.data = torch.randn(length, size)

    def __getitem__(self, index):
        return self.data[index]

    def __len__(self):
        return self.len


class RandomIterableDataset(IterableDataset):
    """`count` rows of `size` normal draws, drawn as they are read."""

    def __init__(self, size, count):
        self.count = count
        self.size = size

    def __iter__(self):
        for _ in range(self.count):
            yield torch.randn(self.size)


class RandomIterableDatasetWithLen(RandomIterableDataset):
    """RandomIterableDataset with a length."""

    def __len__(self):
        return self.count


class BoringModel(LightningModule):
    """A Linear(32, 2) whose loss is the MSE of its output against ones; SGD (lr 0.1) with a
    StepLR of step 1; 64 random rows per split. Subclass it and override what a case needs."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(32, 2)

    def forward(self, x):
        return self.layer(x)

    def loss(self, preds, labels=None):
        if labels is None:
            labels = torch.ones_like(preds)
        return F.mse_loss(preds, labels)

    def step(self, batch):
        return self.loss(self(batch))

    def training_step(self, batch, batch_idx):
        return {"loss": self.step(batch)}

    def validation_step(self, batch, batch_idx):
        return {"x": self.step(batch)}

    def test_step(self, batch, batch_idx):
        return {"y": self.step(batch)}

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)]

    def train_dataloader(self):
        return DataLoader(RandomDataset(32, 64))

    def val_dataloader(self):
        return DataLoader(RandomDataset(32, 64))

    def test_dataloader(self):
        return DataLoader(RandomDataset(32, 64))

    def predict_dataloader(self):
        return DataLoader(RandomDataset(32, 64))


class _SplitLoaders(LightningDataModule):
    """A DataLoader over `random_<split>` for each split (what `setup` made)."""

    def train_dataloader(self):
        return DataLoader(self.random_train)

    def val_dataloader(self):
        return DataLoader(self.random_val)

    def test_dataloader(self):
        return DataLoader(self.random_test)

    def predict_dataloader(self):
        return DataLoader(self.random_predict)


class BoringDataModule(_SplitLoaders):
    """256 random rows of 32, drawn when it is made; 64 for each split, in the order train,
    val, test, predict."""

    def __init__(self):
        super().__init__()
        self.random_full = RandomDataset(32, 64 * 4)

    def setup(self, stage):
        if stage == "fit":
            self.random_train = Subset(self.random_full, indices=range(64))
        if stage in ("fit", "validate"):
            self.random_val = Subset(self.random_full, indices=range(64, 64 * 2))
        if stage == "test":
            self.random_test = Subset(self.random_full, indices=range(64 * 2, 64 * 3))
        if stage == "predict":
            self.random_predict = Subset(self.random_full, indices=range(64 * 3, 64 * 4))


class BoringDataModuleNoLen(_SplitLoaders):
    """Iterable random rows of 32 without a length: 512 to train on, 128 to validate, 256 to
    test, 64 to predict."""

    def setup(self, stage):
        if stage == "fit":
            self.random_train = RandomIterableDataset(32, 512)
        if stage in ("fit", "validate"):
            self.random_val = RandomIterableDataset(32, 128)
        if stage == "test":
            self.random_test = RandomIterableDataset(32, 256)
        if stage == "predict":
            self.random_predict = RandomIterableDataset(32, 64)


class ManualOptimBoringModel(BoringModel):
    """BoringModel in manual optimization: zero_grad, manual_backward, step."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        loss = self.step(batch)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        return loss


class DemoModel(LightningModule):
    """relu(Linear(32, out_dim)) of the flattened batch; the loss is its sum; Adam."""

    def __init__(self, out_dim=10, learning_rate=0.02):
        super().__init__()
        self.l1 = nn.Linear(32, out_dim)
        self.learning_rate = learning_rate

    def forward(self, x):
        return torch.relu(self.l1(x.view(x.size(0), -1)))

    def training_step(self, batch, batch_nb):
        return self(batch).sum()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class Net(nn.Module):
    """The MNIST CNN of PyTorch's examples: two convolutions, max-pooling, dropout, two Linear
    layers, log-softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)
