"""DataLoaders over IterableDatasets without `__len__`, as written for data whose length is
not known up front: Lightning runs each pass until the iterator ends (`num_training_batches`
is inf) and validates at each pass's end. Each pass here ends where the data says (the points'
running sum), so no length could be given. The training stream adds noise from the main
process's generator, between the steps' dropout draws: the losses are Lightning's only if
each batch is made when Lightning's fetcher makes it (one batch ahead, for a DataLoader
without a length). Validation streams from two workers, sharded by `get_worker_info()`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class LineUntil(IterableDataset):
    """(x, 2·sum(x) − 1 + noise) for the points in order, until their first coordinates sum
    past `budget` (a worker takes every num_workers-th point and its share of the budget)."""

    def __init__(self, x, budget, noise):
        self.x, self.budget, self.noise = x, budget, noise

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        spent, budget = 0.0, self.budget / step
        for i in range(start, len(self.x), step):
            x = self.x[i]
            spent += float(x[0])
            if spent > budget:
                return
            y = 2 * x.sum() - 1 + self.noise * torch.randn(())
            yield x, y.reshape(1)


class StreamModel(L.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.net(x), y))

    def on_train_start(self):
        # Lightning's numbers for DataLoaders it cannot size (an int limit_train_batches sizes
        # the training pass); logged, so metrics.csv compares them with Lightning's.
        t = self.trainer
        n = t.num_training_batches
        want = (-1 if n == float("inf") else n * t.max_epochs, [float("inf")])
        if (t.estimated_stepping_batches, t.num_val_batches) != want:
            raise RuntimeError(f"loop numbers of unsized loaders: {t.estimated_stepping_batches}, {t.num_val_batches}")
        self.log("train_batches_known", float(n != float("inf")))

    def on_train_epoch_end(self):
        if not self.trainer.is_last_batch:
            raise RuntimeError("the pass's last batch was not known as the last")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class Streams(L.LightningDataModule):
    def setup(self, stage):
        self.train_x = torch.rand(400, 4)
        self.val_x = torch.rand(100, 4)

    def train_dataloader(self):
        return DataLoader(LineUntil(self.train_x, 100.0, 0.1), batch_size=8)

    def val_dataloader(self):
        return DataLoader(LineUntil(self.val_x, 40.0, 0.0), batch_size=8, num_workers=2)
