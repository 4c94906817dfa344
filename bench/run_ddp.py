"""One 2-process DDP training run of a parity workload in plain PyTorch
(`DistributedDataParallel`, gloo, under `torchrun --nproc-per-node 2`) or in Lightning 2.6
(`Trainer(strategy="ddp", devices=2, accelerator="cpu")`), for bench/ddp.py, on the CPU, one
libtorch thread per process. Both fetch whole batches as bench/run_torch.py does (one gather
per tensor), the batches of each rank's `DistributedSampler(shuffle=True, seed=SEED)` (what
Lightning puts in; given to Lightning ready-made with `use_distributed_sampler=False`, so both
fetch the same way). Rank 0 prints one JSON object: its seconds per epoch and last loss.

    torchrun --standalone --nproc-per-node 2 bench/run_ddp.py torch WORKLOAD EPOCHS SEED
    .venv/bin/python bench/run_ddp.py lightning WORKLOAD EPOCHS SEED
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_torch  # noqa: E402


def model_and_data(workload):
    """The model (drawn now), and a function drawing the data: called after every rank is
    reseeded, as Lightning's DDPStrategy reseeds before a DataModule's setup (and lthost, whose
    plugins draw their data there)."""
    from parity_reference import ParityModuleMNIST, synthetic_mnist

    if workload == "parity-mlp":
        return ParityModuleMNIST(), 128, synthetic_mnist, 0.02
    model, batch_size, x, y = run_torch.mnist_cnn()
    return model, batch_size, lambda: (x, y), 0.001


def loader(x, y, batch_size, rank, seed):
    """Whole batches of this rank's DistributedSampler (set_epoch through `.sampler.sampler`)."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

    class Rows(Dataset):
        def __getitem__(self, rows):
            idx = torch.tensor(rows)
            return x.index_select(0, idx), y.index_select(0, idx)

        def __len__(self):
            return len(x)

    sampler = DistributedSampler(range(len(x)), num_replicas=2, rank=rank, shuffle=True, seed=seed)
    return DataLoader(Rows(), sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None), sampler


def main(runner, workload, epochs, seed):
    import torch

    torch.set_num_threads(1)
    if runner == "lightning":
        import lightning as L

        # PL_GLOBAL_SEED set, so that the DDP strategy's reset_seed reseeds every rank.
        L.seed_everything(seed, verbose=False)
    else:
        torch.manual_seed(seed)
    model, batch_size, draw, lr = model_and_data(workload)
    out = {"epoch_seconds": [], "last_loss": None}
    if runner == "torch":
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo")
        rank = dist.get_rank()
        ddp = DistributedDataParallel(model)
        torch.manual_seed(seed)
        x, y = draw()
        dl, sampler = loader(x, y, batch_size, rank, seed)
        optimizer = torch.optim.Adam(ddp.parameters(), lr=lr)
        ddp.train()
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            t0 = time.perf_counter()
            for batch in dl:
                xb, yb = batch
                loss = torch.nn.functional.cross_entropy(ddp(xb), yb)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            out["last_loss"] = loss.item()
            out["epoch_seconds"].append(time.perf_counter() - t0)
        dist.barrier()
        dist.destroy_process_group()
    else:
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
        import lightning as L

        class Wrapped(L.LightningModule):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def training_step(self, batch, batch_idx):
                xb, yb = batch
                self.loss = torch.nn.functional.cross_entropy(self.inner(xb), yb)
                return self.loss

            def setup(self, stage):
                # After Lightning's reseed, before anything else draws (as a DataModule's setup).
                self.x, self.y = draw()

            def train_dataloader(self):
                dl, self.sampler = loader(self.x, self.y, batch_size, self.global_rank, seed)
                return dl

            def on_train_epoch_start(self):
                self.sampler.set_epoch(self.current_epoch)
                self.t0 = time.perf_counter()

            def on_train_epoch_end(self):
                out["last_loss"] = self.loss.item()
                out["epoch_seconds"].append(time.perf_counter() - self.t0)

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=lr)

        trainer = L.Trainer(strategy="ddp", devices=2, accelerator="cpu", max_epochs=epochs, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, use_distributed_sampler=False)
        trainer.fit(Wrapped(model))
        rank = trainer.global_rank
    if rank == 0:
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
