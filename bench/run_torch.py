"""One training run of a parity workload in vanilla PyTorch or in PyTorch Lightning 2.6
(logging, checkpointing, progress bar and summary off, as Lightning's own parity benchmark
runs it), for bench/parity.py. Prints one JSON object: seconds per epoch, the last step's
loss, seconds from process start to the first training step.

    .venv/bin/python bench/run_torch.py vanilla|lightning parity-rnn|parity-mlp EPOCHS THREADS SEED
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


def main(runner, workload, epochs, threads, seed):
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
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle)
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
                loss = self.inner.training_step(batch)
                out["last_loss"] = loss
                return loss

            def on_train_epoch_start(self):
                self.t0 = time.perf_counter()

            def on_train_epoch_end(self):
                out["epoch_seconds"].append(time.perf_counter() - self.t0)

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=lr)

        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(Wrapped(model), loader)
        out["last_loss"] = out["last_loss"].item()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
