"""Datasets the host batches (columns of equal length along dim 0), random_split, Subset."""

import math

from wit_world.exports import data_module as _dm
from wit_world.imports import tensor as _t


class Dataset:
    """Columns batched along dim 0 by the host (torch's TensorDataset + DataLoader)."""

    def __init__(self, *columns, batch_size=1, shuffle=False, drop_last=False):
        self.columns, self.batch_size, self.shuffle, self.drop_last = list(columns), batch_size, shuffle, drop_last

    def record(self):
        return _dm.Dataset(self.columns, self.batch_size, self.shuffle, self.drop_last, None)


def subset(columns, indices):
    """torch.utils.data.Subset: rows `indices` (an int64 tensor) of every column."""
    return [c.index_select(0, indices) for c in columns]


def random_split(columns, lengths, seed=None):
    """torch.utils.data.random_split over columns: counts, or fractions summing to 1;
    `seed`: generator=torch.Generator().manual_seed(seed), else the run's generator."""
    n = columns[0].shape()[0]
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    else:
        counts = list(lengths)
    if sum(counts) != n:
        raise ValueError(f"random_split: lengths {counts} do not sum to the {n} rows")
    order = _t.Tensor.randperm(n) if seed is None else _t.Tensor.randperm_seeded(n, seed)
    parts, start = [], 0
    for c in counts:
        parts.append(subset(columns, order.narrow(0, start, c)))
        start += c
    return parts
