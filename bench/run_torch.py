"""One training run of a parity workload in vanilla PyTorch or in PyTorch Lightning 2.6
(logging, checkpointing, progress bar and summary off, as Lightning's own parity benchmark
runs it), for bench/parity.py, on the CPU. Batches are fetched as native and lthost fetch
them — a whole batch at a time (a slice, or one gather per tensor when shuffled) through a
DataLoader whose sampler hands out whole batches, so every generator draw is the
DataLoader's — and the loss is read once per epoch, after its last step. The vanilla run
also times the data path alone: the same epochs fetched through a row-by-row DataLoader
(TensorDataset + default collate, what most scripts write) and through the whole-batch one.
Prints one JSON object: seconds per epoch, the last step's loss, seconds from process start
to the first training step (and, vanilla, the data path's seconds per fit).

    .venv/bin/python bench/run_torch.py vanilla|lightning parity-rnn|parity-mlp EPOCHS THREADS SEED [PRECISION]

PRECISION (Lightning only): the Trainer's `precision`, "32-true" by default.
"""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))


def process_age():
    """Seconds since this process started (from /proc, as lthost measures itself)."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        btime = next(int(l.split()[1]) for l in f if l.startswith("btime"))
    return time.time() - (btime + start_ticks / os.sysconf("SC_CLK_TCK"))


def mnist_cnn():
    """plugins/mnist-cnn's model and training split, on the IDX files in $BENCH_MNIST_DIR."""
    import torch
    import torch.nn.functional as F

    import transforms_reference as t

    t.DIR = os.environ["BENCH_MNIST_DIR"]

    class Cnn(t.Cnn):
        def training_step(self, batch):
            x, y = batch
            return F.cross_entropy(self(x), y)

    model = Cnn()
    images = ((t.read_idx("train-images-idx3-ubyte").float() / 255.0).view(-1, 1, 28, 28) - t.MEAN) / t.STD
    labels = t.read_idx("train-labels-idx1-ubyte").long()
    n = images.shape[0]
    train = n - min(5000, n // 5)
    return model, 64, images[:train], labels[:train]


def tiny_transformer():
    """plugins/tiny-transformer's model and data."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class TinyTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(16, 32)
            self.attn = nn.MultiheadAttention(32, 4, dropout=0.0, bias=True, batch_first=True)
            self.ln1 = nn.LayerNorm(32)
            self.ff1 = nn.Linear(32, 64)
            self.ff2 = nn.Linear(64, 32)
            self.ln2 = nn.LayerNorm(32)
            self.head = nn.Linear(32, 2)

        def training_step(self, batch):
            tokens, y = batch
            x = self.emb(tokens)
            a, _ = self.attn(x, x, x)
            x = self.ln1(x + a)
            x = self.ln2(x + self.ff2(F.relu(self.ff1(x))))
            return F.cross_entropy(self.head(x.mean(1)), y)

    model = TinyTransformer()
    x = torch.randint(0, 16, (512, 24))
    return model, 32, x, x.sum(1) % 2


def whole_batches(x, y, batch_size, shuffle):
    """A DataLoader yielding whole batches: consecutive rows sliced, shuffled rows gathered
    with one index_select per tensor. Its draws are DataLoader(shuffle=...)'s: the iterator's
    base seed, then RandomSampler's seed."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

    class Rows(Dataset):
        def __getitem__(self, rows):
            if isinstance(rows, slice):
                return x[rows], y[rows]
            idx = torch.tensor(rows)
            return x.index_select(0, idx), y.index_select(0, idx)

    class Slices(Sampler):
        def __iter__(self):
            return (slice(i, i + batch_size) for i in range(0, len(x), batch_size))

        def __len__(self):
            return (len(x) + batch_size - 1) // batch_size

    sampler = BatchSampler(RandomSampler(range(len(x))), batch_size, drop_last=False) if shuffle else Slices()
    return DataLoader(Rows(), sampler=sampler, batch_size=None)


def fetch_seconds(loader, epochs):
    """Seconds to iterate `loader` `epochs` times, fetching only."""
    t0 = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    return time.perf_counter() - t0


def main(runner, workload, epochs, threads, seed, precision="32-true"):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from parity_reference import ParityModuleMNIST, ParityModuleRNN, average_dataset, synthetic_mnist

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    shuffle, lr = False, 0.02
    if workload == "parity-rnn":
        model, batch_size = ParityModuleRNN(), 30
        x, y = average_dataset()
    elif workload == "parity-mlp":
        model, batch_size = ParityModuleMNIST(), 128
        x, y = synthetic_mnist()
    elif workload == "mnist-cnn":
        model, batch_size, x, y = mnist_cnn()
        shuffle, lr = True, 0.001
    else:
        model, batch_size, x, y = tiny_transformer()
        lr = 0.001
    loader = whole_batches(x, y, batch_size, shuffle)
    out = {"epoch_seconds": [], "last_loss": None, "first_step": None}
    if runner == "vanilla":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(epochs):
            t0 = time.perf_counter()
            for batch in loader:
                if out["first_step"] is None:
                    out["first_step"] = process_age()
                loss = model.training_step(batch)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            out["last_loss"] = loss.item()
            out["epoch_seconds"].append(time.perf_counter() - t0)
        rows = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)
        out["data_path"] = {"rows": fetch_seconds(rows, epochs), "whole_batches": fetch_seconds(loader, epochs)}
    else:
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        import lightning as L

        class Wrapped(L.LightningModule):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def training_step(self, batch, batch_idx):
                if out["first_step"] is None:
                    out["first_step"] = process_age()
                self.loss = self.inner.training_step(batch)
                return self.loss

            def on_train_epoch_start(self):
                self.t0 = time.perf_counter()

            def on_train_epoch_end(self):
                out["last_loss"] = self.loss.item()
                out["epoch_seconds"].append(time.perf_counter() - self.t0)

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=lr)

        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                            precision=precision)
        trainer.fit(Wrapped(model), loader)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:7])
