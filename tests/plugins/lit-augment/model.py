"""A map-style Dataset read as torch reads it: `__getitem__` adds fresh noise to every item
each epoch (random augmentation); the training DataLoader has a batch sampler of the file's
own, its own `collate_fn` (a dict batch carrying the items' names, which are not tensors)
and two workers, whose noise comes from torch's per-worker generators. Validation is an
IterableDataset sharded between two workers by `get_worker_info()`. The DataModule's
`on_before_batch_transfer` turns its (x, y) batches into dicts; the module's
`on_after_batch_transfer` scales the training inputs by a random factor. lthost fetches
each batch's items from the plugin every pass and streams the validation batches from
worker instances; the same file runs in Lightning 2.6.6
(tests/reference/lightning_files_reference.py).

`sampling` picks the training DataLoader's sampling instead (each against Lightning too):
"generator", a DataLoader with a generator of the file's (its RandomSampler and its
iterator's base seed, which seeds the workers, draw from it; "sequential", the same without
shuffling: only the base seed); "tensors", a TensorDataset
shuffled by such a generator; "replacement", RandomSampler(replacement=True, num_samples);
"subset", SubsetRandomSampler; "weighted", WeightedRandomSampler with its own generator.
With workers seeded as Lightning seeds them ("seed_workers": `seed_everything(workers=True)`,
whose worker_init_fn Lightning adds to every DataLoader, validation's stream included) or by
a worker_init_fn of the file's ("worker_init", and "persistent" with persistent workers, whose
worker_init_fn runs once), items also draw from Python's `random`, shifted by their worker's
`get_worker_info().id`. "curriculum" (run with `reload_dataloaders_every_n_epochs=1`)
grows both DataLoaders with `self.trainer.current_epoch`: 80 more shuffled training points
and 20 more validation points each epoch. `freeze=True` freezes the first layer
(`requires_grad_(False)` and `.eval()`, transfer learning's frozen backbone: the model summary
shows it in eval mode) while SGD with momentum still holds every parameter, as torch's
optimizers skip the ones without a gradient."""

import random

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    get_worker_info,
)


class NoisyPoints(Dataset):
    def __init__(self, x, y, noise, broken=-1, jitter=0.0):
        self.x, self.y, self.noise, self.broken, self.jitter = x, y, noise, broken, jitter

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if i == self.broken:
            raise IndexError(f"item {i} is broken")
        x = self.x[i] + self.noise * torch.randn(self.x.shape[1])
        if self.jitter:
            x = x + self.jitter * (random.random() + get_worker_info().id)
        return {"x": x, "y": self.y[i], "name": f"point-{i}"}


def collate(items):
    return {
        "x": torch.stack([it["x"] for it in items]),
        "y": torch.stack([it["y"] for it in items]),
        "names": [it["name"] for it in items],
    }


class Classifier(L.LightningModule):
    def __init__(self, lr=0.05, freeze=False):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
        if freeze:
            self.net[0].requires_grad_(False)
            self.net[0].eval()

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self.net(batch["x"]), batch["y"])
        self.log("train_loss", loss)
        self.log("batch_names", float(len(batch.get("names", []))))
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.cross_entropy(self.net(batch["x"]), batch["y"]))

    def on_after_batch_transfer(self, batch, dataloader_idx):
        # Augmentation on the device, in training only (Lightning's documented use).
        if self.trainer.training:
            batch["x"] = batch["x"] * (1 + 0.1 * torch.rand(1))
        return batch

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class Points(L.LightningDataModule):
    def __init__(self, broken_item=-1, sampling="labels"):
        super().__init__()
        self.broken_item = broken_item  # an item whose __getitem__ raises (for lthost's error test)
        self.sampling = sampling
        if sampling == "seed_workers":
            L.seed_everything(42, workers=True)

    def setup(self, stage):
        x = torch.randn(300, 8)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
        jitter = 0.1 if self.sampling in ("seed_workers", "worker_init", "persistent") else 0.0
        self.train = NoisyPoints(x[:240], y[:240], 0.3, self.broken_item, jitter)
        self.val = NoisyPoints(x[240:], y[240:], 0.3)
        self.tensors = TensorDataset(x[:240], y[:240])
        self.val_tensors = TensorDataset(x[240:], y[240:])

    def train_dataloader(self):
        points = dict(batch_size=16, collate_fn=collate, num_workers=2)
        if self.sampling == "curriculum":
            n = 80 * min(3, self.trainer.current_epoch + 1)
            return DataLoader(Subset(self.tensors, range(n)), batch_size=16, shuffle=True)
        if self.sampling == "generator":
            return DataLoader(self.train, shuffle=True, generator=torch.Generator().manual_seed(7), **points)
        if self.sampling == "sequential":
            return DataLoader(self.train, generator=torch.Generator().manual_seed(7), **points)
        if self.sampling == "tensors":
            return DataLoader(self.tensors, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(7))
        if self.sampling == "replacement":
            return DataLoader(self.train, sampler=RandomSampler(self.train, replacement=True, num_samples=200), **points)
        if self.sampling == "subset":
            return DataLoader(self.train, sampler=SubsetRandomSampler(range(0, 240, 2)), **points)
        if self.sampling == "seed_workers":
            return DataLoader(self.train, shuffle=True, **points)
        if self.sampling == "worker_init":
            return DataLoader(self.train, shuffle=True, worker_init_fn=reseed, **points)
        if self.sampling == "persistent":
            return DataLoader(self.train, shuffle=True, worker_init_fn=reseed, persistent_workers=True, **points)
        if self.sampling == "weighted":
            weights = 1.0 + (self.train.y == 0).float()
            sampler = WeightedRandomSampler(weights, 160, generator=torch.Generator().manual_seed(3))
            return DataLoader(self.train, sampler=sampler, **points)
        return DataLoader(self.train, batch_sampler=LabelSortedBatches(self.train, 16), collate_fn=collate, num_workers=2)

    def val_dataloader(self):
        if self.sampling == "curriculum":
            return DataLoader(Subset(self.val_tensors, range(20 * (self.trainer.current_epoch + 1))), batch_size=16)
        return DataLoader(PointStream(self.val), batch_size=16, num_workers=2)

    def on_before_batch_transfer(self, batch, dataloader_idx):
        # The validation batches (x, y) become dicts, as the training batches are.
        if isinstance(batch, (list, tuple)):
            x, y = batch
            return {"x": x, "y": y}
        return batch


def reseed(worker_id):
    """A worker_init_fn: torch's and Python's generators of the worker from its seed."""
    seed = torch.initial_seed()
    torch.manual_seed((seed * 3 + worker_id) % 2**63)
    random.seed(seed + 11)


class LabelSortedBatches(Sampler):
    """A batch sampler of the file's own: torch's RandomSampler (its draws from the run's
    generator, in the main process) cut into batches, each batch's indices ordered by label."""

    def __init__(self, points, batch_size):
        self.points, self.batch_size = points, batch_size

    def __len__(self):
        return (len(self.points) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = list(RandomSampler(self.points))
        for k in range(0, len(order), self.batch_size):
            yield sorted(order[k : k + self.batch_size], key=lambda i: (int(self.points.y[i]), i))


class PointStream(IterableDataset):
    """The validation points as a stream, sharded between the DataLoader's workers, each
    item with noise from its worker's generator; (x, y) tuples, collated by default_collate."""

    def __init__(self, points):
        self.points = points

    def __len__(self):
        return len(self.points)

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, len(self.points), step):
            item = self.points[i]
            yield item["x"], item["y"]
