"""torch.utils.data: Dataset, TensorDataset, Subset, random_split, the samplers and
DataLoader. The host draws torch's sampler orders from the run's generator. A TensorDataset
(or a Subset of one) collated by `default_collate` becomes the host's batching of columns:
its tensors are the columns, gathered a batch at a time. Any other map-style dataset, or a
`collate_fn` of the user's, is read as torch reads it: every pass, the host hands each
batch's indices to the plugin, which calls `__getitem__` per item and `collate_fn` on the
items (`DataLoader.fetch`); with `num_workers`, batch i draws its random numbers from
worker i mod N's generator, seeded as torch seeds its workers (Python's `random` too), and
the worker_init_fn runs at each worker's start."""

import itertools
import math
import random

from .. import _core


class Dataset:
    def __getitem__(self, index):
        raise NotImplementedError("Dataset.__getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    def __iter__(self):
        raise NotImplementedError("IterableDataset.__iter__")


class TensorDataset(Dataset):
    def __init__(self, *tensors):
        if any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            raise ValueError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return [self.dataset[self.indices[i]] for i in idx]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.cumulative_sizes, total = [], 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self):
        return self.cumulative_sizes[-1] if self.cumulative_sizes else 0

    def __getitem__(self, idx):
        if idx < 0:
            idx += len(self)
        for k, end in enumerate(self.cumulative_sizes):
            if idx < end:
                start = self.cumulative_sizes[k - 1] if k else 0
                return self.datasets[k][idx - start]
        raise IndexError("index out of range")


def random_split(dataset, lengths, generator=None):
    """torch's random_split: fractions become counts (the remainder spread round-robin); the
    order is `randperm` from `generator` (a torch.Generator) or the run's generator."""
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    else:
        counts = list(lengths)
    if sum(counts) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    from .. import randperm

    order = randperm(n, generator=generator).tolist()
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, order[start : start + c]))
        start += c
    return out


class Sampler:
    """torch's Sampler. A subclass of the file's own (its `__iter__` giving indices) is asked
    for each pass's indices in the plugin, as torch's main process asks it."""

    def __init__(self, data_source=None):
        self.data_source = data_source


class SequentialSampler(Sampler):
    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)

    def _wit(self, dm):
        return dm.Sampler_Sequential()


class RandomSampler(Sampler):
    """torch's RandomSampler. Without a generator of its own it draws a seed from the run's
    generator and permutes (or, with `replacement`, draws `randint`s 32 at a time) from a
    generator seeded with it; with `generator` it draws from that one."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        super().__init__(data_source)
        self.replacement, self._num_samples, self.generator = replacement, num_samples, generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        from .. import Generator, empty, int64, randint, randperm

        n = len(self.data_source)
        if self.generator is None:
            generator = Generator().manual_seed(int(empty((), dtype=int64).random_().item()))
        else:
            generator = self.generator
        if self.replacement:
            for _ in range(self.num_samples // 32):
                yield from randint(high=n, size=(32,), dtype=int64, generator=generator).tolist()
            yield from randint(high=n, size=(self.num_samples % 32,), dtype=int64, generator=generator).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from randperm(n, generator=generator).tolist()
            yield from randperm(n, generator=generator).tolist()[: self.num_samples % n]

    def __len__(self):
        return self.num_samples

    def _in_host(self):
        return not self.replacement and self._num_samples is None and self.generator is None

    def _wit(self, dm):
        return dm.Sampler_Random()


class SubsetRandomSampler(Sampler):
    """torch's SubsetRandomSampler: `indices` in the order of one `randperm` (from `generator`,
    else the run's generator)."""

    def __init__(self, indices, generator=None):
        super().__init__(None)
        self.indices, self.generator = indices, generator

    def __iter__(self):
        from .. import randperm

        for i in randperm(len(self.indices), generator=self.generator).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """torch's BatchSampler: the indices of `sampler` in lists of `batch_size`."""

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class WeightedRandomSampler(Sampler):
    """torch's WeightedRandomSampler: one `multinomial` draw a pass (the host's, from the
    run's generator; the plugin's from `generator` when it has one)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        super().__init__(None)
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        self.weights = [float(w) for w in (weights.tolist() if isinstance(weights, _core.Tensor) else weights)]
        self.num_samples, self.replacement, self.generator = num_samples, replacement, generator

    def __iter__(self):
        from .. import float64, multinomial, tensor

        drawn = multinomial(tensor(self.weights, dtype=float64), self.num_samples, self.replacement, generator=self.generator)
        return iter(drawn.tolist())

    def __len__(self):
        return self.num_samples

    def _in_host(self):
        return self.generator is None

    def _wit(self, dm):
        return dm.Sampler_Weighted(dm.WeightedSampler(self.weights, self.num_samples, self.replacement))


class DistributedSampler(Sampler):
    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        super().__init__(dataset)
        if num_replicas is None or rank is None:
            raise NotImplementedError("DistributedSampler: give num_replicas and rank")
        self.num_replicas, self.rank, self.shuffle, self.seed, self.drop_last = num_replicas, rank, shuffle, seed, drop_last

    def _wit(self, dm):
        return dm.Sampler_Distributed(dm.DistributedSampler(self.num_replicas, self.rank, self.shuffle, self.seed, self.drop_last))


# The samplers the host runs (drawing as torch does), unless given a generator of the file's
# (`_in_host`); any other, a subclass included, runs in the plugin.
_HOST_SAMPLERS = (SequentialSampler, RandomSampler, WeightedRandomSampler, DistributedSampler)


def _in_host(sampler):
    return type(sampler) in _HOST_SAMPLERS and getattr(sampler, "_in_host", lambda: True)()


def default_collate(batch):
    """torch's default_collate for tensors, numbers, sequences and dicts of them."""
    from .. import stack, tensor

    elem = batch[0]
    if isinstance(elem, _core.Tensor):
        return stack(batch, 0)
    if isinstance(elem, bool):
        return tensor(batch)
    if isinstance(elem, int):
        return tensor(batch)
    if isinstance(elem, float):
        return tensor(batch, dtype=_core.float64)
    if isinstance(elem, dict):
        return {k: default_collate([b[k] for b in batch]) for k in elem}
    if isinstance(elem, (tuple, list)):
        return [default_collate(list(samples)) for samples in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, numbers, dicts or lists; found {type(elem).__name__}")


class _Kept:
    """A value of a fetched batch that is not a tensor (a string, a number left as it is by
    a collate_fn): it stays in the plugin, in the batch's structure."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _flatten(tree, leaves):
    """The structure of a collated batch (tensors replaced by their index in `leaves`)."""
    if isinstance(tree, _core.Tensor):
        leaves.append(tree)
        return len(leaves) - 1
    if isinstance(tree, dict):
        return {k: _flatten(v, leaves) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_flatten(v, leaves) for v in tree]
    return _Kept(tree)


def unflatten(structure, leaves):
    if isinstance(structure, int):
        return leaves[structure]
    if isinstance(structure, _Kept):
        return structure.value
    if isinstance(structure, dict):
        return {k: unflatten(v, leaves) for k, v in structure.items()}
    return [unflatten(v, leaves) for v in structure]


def columns(dataset):
    """(column tensors, the structure of one batch) of a TensorDataset or a Subset of one;
    None for any other dataset (read item by item)."""
    if isinstance(dataset, TensorDataset):
        return list(dataset.tensors), list(range(len(dataset.tensors)))
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset):
        from .. import tensor

        idx = tensor(dataset.indices, dtype=_core.int64)
        return [t.index_select(0, idx) for t in dataset.dataset.tensors], list(range(len(dataset.dataset.tensors)))
    return None


class DataLoader:
    """torch's DataLoader: batch_size, shuffle, drop_last, sampler, batch_sampler, collate_fn,
    num_workers. The host samples and batches; a sampler or batch_sampler of the file's own
    gives each pass's indices from the plugin."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None, multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False, pin_memory_device="", in_order=True):
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last")
            batch_size = None
        elif batch_size is None:
            raise NotImplementedError("DataLoader(batch_size=None) is not supported by lthost")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if isinstance(dataset, IterableDataset) and shuffle:
            raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got shuffle={shuffle}")
        if isinstance(dataset, IterableDataset) and sampler is not None:
            raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got sampler={sampler}")
        if isinstance(dataset, IterableDataset) and generator is not None:
            raise NotImplementedError("DataLoader(IterableDataset, generator=...): lthost draws a stream's base seed from the run's generator")
        if sampler is None and batch_sampler is None and generator is not None:
            # torch's samplers: the DataLoader's generator is its RandomSampler's.
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if generator is not None and isinstance(sampler, DistributedSampler):
            raise NotImplementedError("DataLoader(sampler=DistributedSampler(...), generator=...): lthost's DistributedSampler runs in the host, which draws the base seed from the run's generator")
        self.generator = generator
        self.dataset, self.batch_size, self.shuffle, self.sampler, self.drop_last = dataset, batch_size, bool(shuffle), sampler, drop_last
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = (2 if num_workers > 0 else None) if prefetch_factor is None else prefetch_factor
        self.worker_init_fn = worker_init_fn
        # Worker id: (its seed, its Python `random` state), for the workers of a map-style
        # dataset reproduced in this instance.
        self._workers = {}
        self.persistent_workers = bool(persistent_workers)
        self.collate_fn = default_collate if collate_fn is None else collate_fn

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        if self._own_sampler():
            n = len(self.sampler)
        elif isinstance(self.sampler, WeightedRandomSampler):
            n = self.sampler.num_samples
        else:
            n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _own_sampler(self):
        """Whether the pass's draws run in the plugin: a sampler of the file's own, or a
        generator of the file's (the DataLoader's, for its base seed, or a sampler's)."""
        return self.batch_sampler is not None or self.generator is not None or (self.sampler is not None and not _in_host(self.sampler))

    def __iter__(self):
        raise NotImplementedError("iterating a DataLoader inside a plugin: the host iterates it (return it from a *_dataloader hook)")

    def record(self, dm):
        """A map-style dataset's (host dataset record, batch structure; None: each fetched
        batch's)."""
        own = self._own_sampler()
        sampler = dm.Sampler_Plugin(len(self)) if own else None if self.sampler is None else self.sampler._wit(dm)
        cols = columns(self.dataset) if self.collate_fn is default_collate and not own else None
        if cols is not None:
            # Handles of the host's own (returning one moves it): the file keeps its tensors.
            handles = [c._h.share() for c in cols[0]]
            return dm.Dataset(handles, self.batch_size, self.shuffle, self.drop_last, sampler, None, 0, self.persistent_workers), cols[1]
        if len(self.dataset) == 0:
            raise ValueError("a DataLoader's dataset is empty")
        return dm.Dataset([], self.batch_size or 1, self.shuffle, self.drop_last, sampler, len(self.dataset), self.num_workers, self.persistent_workers), None

    def sample(self, base_seed):
        """A pass drawn as torch's DataLoader iterator draws it: its base seed (when
        `base_seed`; from the DataLoader's generator, else the run's), then the batches of
        indices of the batch_sampler, or of the sampler cut into batches: (seed, batches).

        The sampler is asked as torch's iterator asks it when Lightning takes the pass's
        batches: for their number without workers, `prefetch_factor * num_workers` more with
        workers (asked ahead; the extra ones are not kept), so a sampler drawing lazily
        (RandomSampler's last `randperm`, taken when it is asked past its end) leaves its
        generator where torch's does, and one without an end is not read to it."""
        seed = None
        if base_seed:
            from .. import empty, int64

            seed = int(empty((), dtype=int64).random_(generator=self.generator).item())
        if self.batch_sampler is not None:
            batches = iter(self.batch_sampler)
        else:
            sampler = self.sampler
            if sampler is None:
                sampler = RandomSampler(self.dataset) if self.shuffle else SequentialSampler(self.dataset)
            batches = iter(BatchSampler(sampler, self.batch_size, self.drop_last))
        n = len(self)
        ahead = self.prefetch_factor * self.num_workers if self.num_workers > 0 else 0
        taken = [[int(i) for i in b] for b in itertools.islice(batches, n + ahead)]
        return seed, taken[:n]

    def auto_add_worker_init_fn(self):
        """Lightning's `_auto_add_worker_init_fn`, when the trainer takes the loader: after
        `seed_everything(workers=True)`, its worker_init_fn on a DataLoader that has none."""
        if self.worker_init_fn is None and SEED_WORKERS[0] is not None:
            self.worker_init_fn = SEED_WORKERS[0]

    def start_pass(self, worker_info):
        """A pass over an IterableDataset in this instance (worker `worker_info`, None in the
        main process): its batches, each (tensors, structure), made as torch's fetcher makes
        them (`batch_size` items, then `collate_fn`; a short last one dropped with
        `drop_last`), with `get_worker_info()` answering for the worker. A worker starts as
        torch starts one (each pass): Python's `random` seeded with its seed, then the
        worker_init_fn, then `iter(dataset)`."""
        global _worker_info
        _worker_info = worker_info
        if worker_info is not None:
            self._start_worker(worker_info.id, worker_info.seed)
        items = iter(self.dataset)
        while True:
            batch = []
            for item in items:
                batch.append(item)
                if len(batch) == self.batch_size:
                    break
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            leaves = []
            structure = _flatten(self.collate_fn(batch), leaves)
            yield leaves, structure

    def fetch(self, indices, worker=None):
        """The batch of items `indices` as torch's fetcher makes it (`__getitem__` per item,
        then `collate_fn`): (its tensors, its structure). With `worker` (id, num_workers,
        seed), as that DataLoader worker: `get_worker_info()` answers for it and Python's
        `random` is its own; at a worker's start (a new seed: a new pass, unless its workers
        persist) `random` is seeded with its seed and the worker_init_fn runs, as in torch."""
        global _worker_info
        if worker is None:
            return self._fetch(indices)
        main = random.getstate()
        _worker_info = WorkerInfo(worker.id, worker.num_workers, worker.seed, self.dataset)
        try:
            seen = self._workers.get(worker.id)
            if seen is None or seen[0] != worker.seed:
                self._start_worker(worker.id, worker.seed)
            else:
                random.setstate(seen[1])
            return self._fetch(indices)
        finally:
            self._workers[worker.id] = (worker.seed, random.getstate())
            random.setstate(main)
            _worker_info = None

    def _start_worker(self, worker_id, seed):
        """What torch's worker loop does before it reads: Python's `random` seeded with the
        worker's seed (its torch generator is the host's, seeded so), then worker_init_fn."""
        random.seed(seed)
        if self.worker_init_fn is not None:
            self.worker_init_fn(worker_id)

    def _fetch(self, indices):
        leaves = []
        structure = _flatten(self.collate_fn([self.dataset[i] for i in indices]), leaves)
        return leaves, structure


class WorkerInfo:
    """torch.utils.data.get_worker_info()'s answer inside a DataLoader worker."""

    def __init__(self, id, num_workers, seed, dataset):
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, dataset={self.dataset!r})"


_worker_info = None

# Lightning's worker_init_fn for DataLoaders without one, once `seed_everything(workers=True)`
# ran (its PL_SEED_WORKERS); None: none.
SEED_WORKERS = [None]


def get_worker_info():
    """The worker this instance is (a stream's DataLoader worker), None in the main process."""
    return _worker_info
