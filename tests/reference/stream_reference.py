"""Streaming sources and random_split in PyTorch itself, for tests/e2e/streams.rs.

- Streams: an IterableDataset yielding whole batches (DataLoader(batch_size=None)) with
  0..3 worker processes. Worker `w` of `n` makes `per` (+ `w` when uneven) batches of
  x = rand(8, 4), y = x·[1, -2, 3, 0.5] + 0.5 + 0.1·randn(8, 1) from its own generator,
  which torch seeds with the iterator's base seed + w; with no workers the main process's
  generator makes them. Linear(4, 1), SGD(0.1), MSE; every training step's loss over two
  epochs. lthost's plugins/stream-regression must give the same losses: the same worker
  seeds, the same round-robin order (skipping workers whose share has ended), the same
  draws from the run's generator.
- CSV: tests/reference/files/regression.csv (written here), split 80/20 by
  random_split(generator=manual_seed(42)), train shuffled, validation after each epoch.

    .venv/bin/python tests/reference/stream_reference.py tests/reference/streams.json
"""

import json
import os
import sys
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset, get_worker_info, random_split

torch.set_num_threads(1)
warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W = torch.tensor([[1.0], [-2.0], [3.0], [0.5]])
BS = 8
EPOCHS = 2
STREAM_CASES = {
    "workers0": {"num_workers": 0, "batches_per_worker": 5, "uneven": False},
    "workers1": {"num_workers": 1, "batches_per_worker": 5, "uneven": False},
    "workers2_uneven": {"num_workers": 2, "batches_per_worker": 3, "uneven": True},
    "workers3_uneven": {"num_workers": 3, "batches_per_worker": 1, "uneven": True},
}


class Batches(IterableDataset):
    def __init__(self, per, uneven):
        self.per, self.uneven = per, uneven

    def __iter__(self):
        info = get_worker_info()
        count = self.per + (info.id if info is not None and self.uneven else 0)
        for _ in range(count):
            x = torch.rand(BS, 4)
            noise = torch.randn(BS, 1)
            yield x, x @ W + 0.5 + noise * 0.1


def stream_losses(case, seed):
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(Batches(case["batches_per_worker"], case["uneven"]), batch_size=None, num_workers=case["num_workers"])
    losses = []
    for _ in range(EPOCHS):
        for x, y in loader:
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def write_csv(path):
    g = torch.Generator().manual_seed(7)
    x = torch.rand(50, 4, generator=g)
    y = x @ W + 0.5 + 0.1 * torch.randn(50, 1, generator=g)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("x0,x1,x2,x3,y\n")
        for row, t in zip(x.tolist(), y.squeeze(1).tolist()):
            f.write(",".join("%.9g" % v for v in row + [t]) + "\n")


def read_csv(path):
    with open(path) as f:
        rows = [[float(v) for v in line.split(",")] for line in f.read().splitlines()[1:]]
    t = torch.tensor(rows, dtype=torch.float32)
    return t[:, :4].contiguous(), t[:, 4:].contiguous()


def csv_run(path, seed):
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = read_csv(path)
    train, val = random_split(TensorDataset(x, y), [0.8, 0.2], generator=torch.Generator().manual_seed(42))
    train_loader = DataLoader(train, batch_size=BS, shuffle=True)
    val_loader = DataLoader(val, batch_size=BS)
    # lthost's sanity check iterates the validation loader under isolate_rng: no effect.
    losses, val_losses = [], []
    for _ in range(EPOCHS):
        for xb, yb in train_loader:
            loss = F.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        with torch.no_grad():
            total, n = 0.0, 0
            for xb, yb in val_loader:
                total += F.mse_loss(model(xb), yb).item() * len(xb)
                n += len(xb)
            val_losses.append(total / n)
    return {"losses": losses, "val_losses": val_losses, "val_rows": sorted(val.indices)}


def main(out):
    seeds = [0, 5]
    streams = {name: {"case": case, "seeds": {str(s): stream_losses(case, s) for s in seeds}} for name, case in STREAM_CASES.items()}
    csv_path = os.path.join(ROOT, "tests/reference/files/regression.csv")
    write_csv(csv_path)
    result = {"epochs": EPOCHS, "batch_size": BS, "streams": streams, "csv": {"path": csv_path, "seeds": {str(s): csv_run(csv_path, s) for s in seeds}}}
    with open(out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
