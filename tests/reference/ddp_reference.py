"""Distributed data parallel from PyTorch itself and from Lightning itself: the oracle for
lthost's DDP (2 processes, the gloo backend, on the CPU). Per-step training losses of each
rank, the final parameters and buffers of each rank, and each epoch's wall time, for two
models:

- parity-mlp: parity_reference.py's ParityModuleMNIST on 640 seeded MNIST-shaped images
  (batch 128, Adam 0.02, 4 epochs), seed 0;
- mnist-cnn: plugins/mnist-cnn's CNN (transforms_reference.py's Cnn, no augmentation) on
  MNIST-format IDX files written here (tests/reference/files/mnist-ddp: 400 training
  images, uint8 from `torch.Generator().manual_seed(12)`), with the plugin's hparams
  {"val_size": 75, "batch_size": 32, "lr": 0.001}: images / 255 normalised with MNIST's
  mean and std, the first 325 images trained on (the last 75 held out; validation is not
  run), Adam 0.001, 2 epochs, seed 0. 325 is odd, so DistributedSampler pads.

Runners (world size 2, one thread per process):

- "torch": plain `DistributedDataParallel` (gloo, broadcast_buffers=True, the defaults) under
  `torchrun --standalone --nproc-per-node 2`, which this script launches on itself
  (`--torch-worker DIR`); each rank writes its results to DIR.
- "lightning": Lightning 2.6.6's `Trainer(strategy="ddp", devices=2, accelerator="cpu")`,
  launched as `--lightning-worker NAME ORDER DIR`; Lightning's own launcher re-runs that
  command line for rank 1 (LOCAL_RANK=1 in its environment).

The conventions Lightning imposes, which the torch runner follows so that both agree:

1. Seeding: `seed_everything(seed)` (torch.manual_seed), the model built, the dataset drawn,
   then `Trainer.fit`, whose DDPStrategy.setup_distributed calls `reset_seed()`: the global
   generator is reseeded with `seed` on every rank before anything of the training draws.
   A LightningDataModule's `setup` runs after that reset, so data drawn there come from the
   reseeded generator ("datamodule" order: seed, model, reseed, dataset).
2. The training DataLoader's sampler becomes `DistributedSampler(dataset, num_replicas=2,
   rank=r, shuffle=True, seed=int(PL_GLOBAL_SEED), drop_last=False)`: Lightning 2.6.6
   shuffles a *training* loader under DDP whatever its own sampler was
   (`_process_dataloader`: `is_shuffled = True` for TRAINING), so parity-mlp, unshuffled on
   one process, is shuffled here. `set_epoch(epoch)` each epoch; the permutation is
   `randperm(n, generator=Generator().manual_seed(seed + epoch))`, padded with its own first
   indices to a multiple of 2, rank r taking positions r, r+2, ...; the global generator is
   not drawn from by the sampler.
3. Each epoch's DataLoader iterator draws its base seed (one int64) from the global
   generator, then the steps draw (Dropout). Every rank's generator is seeded identically,
   so both ranks draw the same Dropout masks at every step (recorded: `dropout_masks`).
4. The loss logged is each rank's own loss on its own batch (not averaged across ranks);
   the gradients are averaged (all-reduce / 2) before Adam's step, so the parameters stay
   identical across ranks. The BatchNorm buffers do not: DDP broadcasts rank 0's buffers
   before every forward, and each rank then updates them with its own batch statistics, so
   after the last step each rank holds its own running stats.

"lightning_file": tests/plugins/lit-ddp/model.py, an unmodified Lightning file, trained by
Lightning's ddp (2 processes, 2 epochs, the sanity check, validation on each rank's share,
`sync_dist` values): rank 0's metrics.csv rows; "lit-ddp-manual" the same file in manual
optimization (`DdpRegressor(manual=True)`); "lit-ddp-unused" with `DdpRegressor(unused=True)` (a layer
rank 1 uses only at even steps, one no rank uses) under `DDPStrategy(find_unused_parameters=True)`
(Lightning's "ddp_find_unused_parameters_true").

Also recorded: "torch_plain" (parity-mlp: seed, model, dataset, no reseed, the sampler
unshuffled as the single-process loader: what a plain torch DDP script does) and
"torch_datamodule"/"lightning_datamodule" (parity-mlp, the datamodule order); the
single-process losses (parity_reference.py's vanilla loop; mnist-cnn's shuffled
single-process loop), and for mnist-cnn (no BatchNorm, no Dropout) a single-process run on
the union of both ranks' batches, whose losses must be the mean of the ranks' losses.

"sync_batchnorm": {"parity-mlp": ...}, the oracle for SyncBatchNorm under DDP (2 processes),
computed on one process since torch's SyncBatchNorm refuses CPU tensors
(`sync_batchnorm_union`). With the batch statistics all-reduced, the 2 ranks are exactly one
model on the union batch [rank 0 rows; rank 1 rows] with an ordinary BatchNorm in training
mode (mean and variance over the union, the running stats updated with the union's mean and
unbiased variance), provided each rank's generator draws what it draws under DDP (kept apart:
the epoch's DataLoader base seed, then each Dropout's mask shaped like that rank's batch,
applied to that rank's rows: the same mask on both ranks here) and the loss trained is the
mean of the ranks' losses (DDP averages the gradients; SyncBatchNorm all-reduces those through
the statistics). Same seeding, data and sampler as the torch runner's parity-mlp. Recorded:
each rank's losses ("losses" {"0", "1"}) and Dropout masks, the hashes of the final parameters
and buffers (identical on both ranks under SyncBatchNorm), "state" (each BatchNorm's final
running_mean, running_var, num_batches_tracked), and "checks": the masks equal the torch
runner's, the same run with per-rank statistics reproduces the torch runner's losses, and the
synced losses' distance from the torch runner's. The first step's union statistics and running
stats are asserted equal to those combined by hand from the two halves. "parity-mlp-64-true":
the same in float64 (Lightning's "64-true": model and inputs converted), where two correct
implementations agree to ~1e-13 rather than float32's ~1e-5.

    .venv/bin/python tests/reference/ddp_reference.py tests/reference/ddp.json
"""

import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import parity_reference
import transforms_reference

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORLD = 2
THREADS = 1
MNIST_DIR = os.path.join(ROOT, "tests/reference/files/mnist-ddp")
MNIST_TRAIN, MNIST_TEST = 400, 10
MODELS = {
    "parity-mlp": {"seed": 0, "epochs": parity_reference.EPOCHS["parity-mlp"], "batch_size": 128, "lr": 0.02,
                   "shuffle_single_process": False, "hparams": {}},
    "mnist-cnn": {"seed": 0, "epochs": 2, "batch_size": 32, "lr": 0.001, "shuffle_single_process": True,
                  "hparams": {"val_size": 75, "batch_size": 32, "lr": 0.001, "augment": False}},
}
# Runs of the torch worker: (model, order, sampler shuffle). Order "lightning": seed, model,
# dataset, reseed; "datamodule": seed, model, reseed, dataset; "plain": seed, model, dataset.
TORCH_RUNS = {
    "torch": [("parity-mlp", "lightning", True), ("mnist-cnn", "lightning", True)],
    "torch_datamodule": [("parity-mlp", "datamodule", True)],
    "torch_plain": [("parity-mlp", "plain", False)],
}
LIGHTNING_RUNS = {"lightning": [("parity-mlp", "lightning"), ("mnist-cnn", "lightning")],
                  "lightning_datamodule": [("parity-mlp", "datamodule")]}


def write_mnist():
    os.makedirs(MNIST_DIR, exist_ok=True)
    g = torch.Generator().manual_seed(12)
    for prefix, n in [("train", MNIST_TRAIN), ("t10k", MNIST_TEST)]:
        transforms_reference.write_idx(os.path.join(MNIST_DIR, f"{prefix}-images-idx3-ubyte"),
                                       torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8))
        transforms_reference.write_idx(os.path.join(MNIST_DIR, f"{prefix}-labels-idx1-ubyte"),
                                       torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8))


def build_model(name):
    return parity_reference.ParityModuleMNIST() if name == "parity-mlp" else transforms_reference.Cnn()


def build_data(name):
    """The training tensors; parity-mlp's drawn from the global generator."""
    if name == "parity-mlp":
        return parity_reference.synthetic_mnist()
    transforms_reference.DIR = MNIST_DIR
    t = transforms_reference
    images = ((t.read_idx("train-images-idx3-ubyte").float() / 255.0).view(-1, 1, 28, 28) - t.MEAN) / t.STD
    labels = t.read_idx("train-labels-idx1-ubyte").long()
    n = images.shape[0]
    train = n - min(MODELS[name]["hparams"]["val_size"], n // 5)
    return images[:train], labels[:train]


def seeded(name, order):
    seed = MODELS[name]["seed"]
    torch.manual_seed(seed)
    model = build_model(name)
    if order == "datamodule":
        torch.manual_seed(seed)
        return model, *build_data(name)
    x, y = build_data(name)
    if order == "lightning":
        torch.manual_seed(seed)
    return model, x, y


def sha(tensors):
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().float().numpy().tobytes())
    return h.hexdigest()


def mask_recorder(model, masks):
    """Records a hash of each training forward's Dropout mask (where the output is zero)."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.register_forward_hook(lambda mod, inp, out: masks.append(
                hashlib.sha256((out == 0).numpy().tobytes()).hexdigest()[:16]) if mod.training else None)


def summary(model, losses, epoch_seconds, masks):
    return {"losses": losses, "epoch_seconds": epoch_seconds, "dropout_masks": masks,
            "params_sha256": sha([p for _, p in model.named_parameters()]),
            "buffers_sha256": sha([b for _, b in model.named_buffers() if b.is_floating_point()])}


def rank_indices(name, n, shuffle):
    """Each rank's sample indices per epoch, as DistributedSampler hands them out."""
    out = {}
    for r in range(WORLD):
        s = DistributedSampler(range(n), num_replicas=WORLD, rank=r, shuffle=shuffle, seed=MODELS[name]["seed"])
        out[str(r)] = []
        for e in range(MODELS[name]["epochs"]):
            s.set_epoch(e)
            out[str(r)].append(list(s))
    return out


# ---------------------------------------------------------------------------- torch DDP


def torch_run(name, order, shuffle, rank, out_dir, tag):
    from torch.nn.parallel import DistributedDataParallel as DDP

    cfg = MODELS[name]
    model, x, y = seeded(name, order)
    ddp = DDP(model)  # broadcast_buffers=True; the parameters are broadcast from rank 0 here
    optimizer = torch.optim.Adam(ddp.parameters(), lr=cfg["lr"])
    dataset = TensorDataset(x, y)
    sampler = DistributedSampler(dataset, num_replicas=WORLD, rank=rank, shuffle=shuffle, seed=cfg["seed"],
                                 drop_last=False)
    loader = DataLoader(dataset, batch_size=cfg["batch_size"], sampler=sampler)
    masks, losses, epoch_seconds = [], [], []
    mask_recorder(model, masks)
    ddp.train()
    for epoch in range(cfg["epochs"]):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        for xb, yb in loader:
            loss = F.cross_entropy(ddp(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        epoch_seconds.append(time.perf_counter() - t0)
    torch.save(model.state_dict(), os.path.join(out_dir, f"{tag}-{name}-{rank}.pt"))
    return summary(model, losses, epoch_seconds, masks)


def torch_worker(out_dir):
    import torch.distributed as dist

    torch.set_num_threads(THREADS)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    assert dist.get_world_size() == WORLD
    result = {tag: {name: torch_run(name, order, shuffle, rank, out_dir, tag) for name, order, shuffle in runs}
              for tag, runs in TORCH_RUNS.items()}
    with open(os.path.join(out_dir, f"torch-{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


# ---------------------------------------------------------------------------- Lightning


def lightning_worker(name, order, out_dir):
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    import lightning as L

    torch.set_num_threads(THREADS)
    cfg = MODELS[name]

    class Module(L.LightningModule):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=cfg["lr"])

    class Data(L.LightningDataModule):
        def setup(self, stage):
            self.x, self.y = build_data(name)

        def train_dataloader(self):
            return DataLoader(TensorDataset(self.x, self.y), batch_size=cfg["batch_size"],
                              shuffle=cfg["shuffle_single_process"])

    class Record(L.Callback):
        def __init__(self):
            self.losses, self.epoch_seconds, self.masks = [], [], []

        def on_train_start(self, trainer, module):
            s = trainer.train_dataloader.sampler
            self.sampler = {"type": type(s).__name__, "num_replicas": s.num_replicas, "rank": s.rank,
                            "shuffle": s.shuffle, "seed": s.seed, "drop_last": s.drop_last}

        def on_train_epoch_start(self, trainer, module):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.losses.append(outputs["loss"].item())

        def on_train_epoch_end(self, trainer, module):
            self.epoch_seconds.append(time.perf_counter() - self.t0)

    L.seed_everything(cfg["seed"], verbose=False)
    net = build_model(name)
    if order == "datamodule":
        data = {"datamodule": Data()}
    else:
        x, y = build_data(name)
        data = {"train_dataloaders": DataLoader(TensorDataset(x, y), batch_size=cfg["batch_size"],
                                                shuffle=cfg["shuffle_single_process"])}
    record = Record()
    mask_recorder(net, record.masks)
    trainer = L.Trainer(strategy="ddp", devices=WORLD, accelerator="cpu", max_epochs=cfg["epochs"], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[record])
    trainer.fit(Module(net), **data)
    rank = trainer.global_rank
    tag = "lightning" if order == "lightning" else "lightning_datamodule"
    torch.save(net.state_dict(), os.path.join(out_dir, f"{tag}-{name}-{rank}.pt"))
    out = summary(net, record.losses, record.epoch_seconds, record.masks)
    out["sampler"] = record.sampler
    with open(os.path.join(out_dir, f"{tag}-{name}-{rank}.json"), "w") as f:
        json.dump(out, f)
    torch.distributed.barrier()


LIGHTNING_FILE = os.path.join(ROOT, "tests/plugins/lit-ddp/model.py")


def lightning_file_worker(out_dir, tag, manual, accelerator="cpu", devices=WORLD, backend=None, unused=False):
    """tests/plugins/lit-ddp/model.py, unchanged, in Lightning's ddp: `seed_everything(0)`, the
    module made (`manual`: in manual optimization), `Trainer(strategy="ddp", devices=2,
    accelerator="cpu", max_epochs=2, log_every_n_steps=1)` with the CSVLogger; rank 0's
    metrics.csv rows are the reference, `<tag>.json`. tools/gpu-check.sh passes another
    accelerator, device count and `DDPStrategy(process_group_backend=...)` (default: the
    device's, nccl on CUDA)."""
    import csv
    import importlib.util
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    torch.set_num_threads(THREADS)
    spec = importlib.util.spec_from_file_location("lit_ddp", LIGHTNING_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    L.seed_everything(0, verbose=False)
    model = mod.DdpRegressor(manual=manual, unused=unused)
    from lightning.pytorch.strategies import DDPStrategy

    strategy = DDPStrategy(process_group_backend=backend, find_unused_parameters=unused)
    trainer = L.Trainer(strategy=strategy, devices=devices, accelerator=accelerator, max_epochs=2, log_every_n_steps=1,
                        logger=CSVLogger(out_dir, name=tag, version=0), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=mod.DdpData())
    if trainer.global_rank == 0:
        with open(os.path.join(out_dir, tag, "version_0", "metrics.csv")) as f:
            rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
        with open(os.path.join(out_dir, f"{tag}.json"), "w") as f:
            json.dump(rows, f)
    torch.distributed.barrier()


# ---------------------------------------------------------------------------- single process


def mnist_single(union=False):
    """mnist-cnn on one process: its shuffled loader, or (union) the batches of both ranks
    concatenated, rank 0's rows first, as one batch per step."""
    cfg = MODELS["mnist-cnn"]
    model, x, y = seeded("mnist-cnn", "plain")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    if union:
        idx = rank_indices("mnist-cnn", len(x), True)
        bs = cfg["batch_size"]
        batches = [torch.tensor(idx["0"][e][i:i + bs] + idx["1"][e][i:i + bs])
                   for e in range(cfg["epochs"]) for i in range(0, len(idx["0"][e]), bs)]
        epochs = [[(x[b], y[b]) for b in batches]]
    else:
        loader = DataLoader(TensorDataset(x, y), batch_size=cfg["batch_size"], shuffle=True)
        epochs = [loader] * cfg["epochs"]
    losses = []
    for loader in epochs:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def sync_batchnorm_union(name="parity-mlp", per_rank_batchnorm=False, order="datamodule", dtype=torch.float32):
    """SyncBatchNorm under DDP (2 processes), computed on one process: the model trained on
    the union of both ranks' batches, [rank 0 rows; rank 1 rows], with its ordinary BatchNorm
    in training mode (the statistics over the union, as SyncBatchNorm all-reduces them; the
    running stats updated with the union's mean and unbiased variance). Each rank's generator
    is kept apart (`rng`): it draws its epoch's DataLoader base seed and, at each step, its
    Dropout mask shaped like its own batch; every Dropout of the union applies rank r's mask
    to rank r's rows. The loss of rank r is F.cross_entropy over its own rows; the trained
    loss is their mean, whose gradient is DDP's average of the ranks' gradients (SyncBatchNorm
    all-reduces the gradient through the batch statistics). Seeding and sampler as the torch
    runner's parity-mlp in `order` ("datamodule": the data drawn in the DataModule's setup, as
    lthost's parity-mlp plugin does; DistributedSampler shuffled).

    `per_rank_batchnorm`: the same run with each rank's rows normalised by their own batch
    statistics (plain DDP's BatchNorm; the running stats left alone): only its losses are
    returned, which must be the torch runner's, a check of everything but the synchronisation."""
    cfg = MODELS[name]
    model, x, y = seeded(name, order)
    # `dtype` float64: Lightning's "64-true", the model and the inputs converted once made.
    model, x = model.to(dtype), x.to(dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    dataset = TensorDataset(x, y)
    samplers = [DistributedSampler(dataset, num_replicas=WORLD, rank=r, shuffle=True, seed=cfg["seed"],
                                   drop_last=False) for r in range(WORLD)]
    loaders = [DataLoader(dataset, batch_size=cfg["batch_size"], sampler=s) for s in samplers]
    rng = [torch.get_rng_state() for _ in range(WORLD)]

    def on_rank(r, fn):
        torch.set_rng_state(rng[r])
        out = fn()
        rng[r] = torch.get_rng_state()
        return out

    sizes = []  # this step's batch size of each rank
    masks = {str(r): [] for r in range(WORLD)}

    def dropout_forward(mod):
        def forward(inp):
            if not mod.training:
                return inp
            outs = []
            for r, half in enumerate(inp.split(sizes)):
                # What torch's Dropout does with rank r's batch: noise = bernoulli_(1 - p) / (1 - p).
                noise = on_rank(r, lambda: F.dropout(torch.ones_like(half), mod.p, training=True))
                out = half * noise
                masks[str(r)].append(hashlib.sha256((out == 0).numpy().tobytes()).hexdigest()[:16])
                outs.append(out)
            return torch.cat(outs)
        return forward

    bns = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.forward = dropout_forward(m)
    checked = {}
    if per_rank_batchnorm:
        for m in bns.values():
            m.forward = lambda inp, m=m: torch.cat([F.batch_norm(h, None, None, m.weight, m.bias, True, 0.0, m.eps)
                                                    for h in inp.split(sizes)])

    def check_stats(mod, inp, out):
        """Once: the union BatchNorm's statistics against those combined from the halves."""
        if checked.get(mod):
            return
        checked[mod] = True
        (xin,) = inp
        halves = xin.detach().double().split(sizes)
        counts = [h.shape[0] for h in halves]
        total = sum(counts)
        mean = sum(c * h.mean(0) for c, h in zip(counts, halves)) / total
        var = sum(c * (h.var(0, unbiased=False) + (h.mean(0) - mean) ** 2) for c, h in zip(counts, halves)) / total
        rm0, rv0 = mod._check_before
        k = mod.momentum
        want = {"output": (xin.detach().double() - mean) / torch.sqrt(var + mod.eps) * mod.weight.double()
                + mod.bias.double(),
                "running_mean": (1 - k) * rm0 + k * mean,
                "running_var": (1 - k) * rv0 + k * var * total / (total - 1)}
        got = {"output": out.detach().double(), "running_mean": mod.running_mean.double(),
               "running_var": mod.running_var.double()}
        for key in want:
            d = (want[key] - got[key]).abs().max().item()
            assert d < 1e-5 if key == "output" else d < 1e-6, (key, d)

    for m in ([] if per_rank_batchnorm else bns.values()):
        m._check_before = (m.running_mean.detach().double().clone(), m.running_var.detach().double().clone())
        m.register_forward_hook(check_stats)
    losses = {str(r): [] for r in range(WORLD)}
    model.train()
    for epoch in range(cfg["epochs"]):
        for s in samplers:
            s.set_epoch(epoch)
        # Each rank's iterator draws its base seed from that rank's generator; fetching draws nothing.
        batches = [on_rank(r, lambda: list(loaders[r])) for r in range(WORLD)]
        assert len({len(b) for b in batches}) == 1
        for step in zip(*batches):
            sizes[:] = [xb.shape[0] for xb, _ in step]
            out = model(torch.cat([xb for xb, _ in step]))
            per_rank = [F.cross_entropy(o, yb) for o, (_, yb) in zip(out.split(sizes), step)]
            loss = sum(per_rank) / WORLD
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for r, l in enumerate(per_rank):
                losses[str(r)].append(l.item())
    torch.set_rng_state(rng[0])
    if per_rank_batchnorm:
        return {"losses": losses, "dropout_masks": masks}
    assert checked and all(checked.values())
    for m in bns.values():
        del m._check_before
    return {"losses": losses, "dropout_masks": masks,
            "params_sha256": sha([p for _, p in model.named_parameters()]),
            "buffers_sha256": sha([b for _, b in model.named_buffers() if b.is_floating_point()]),
            "state": {n: {"running_mean": m.running_mean.tolist(), "running_var": m.running_var.tolist(),
                          "num_batches_tracked": int(m.num_batches_tracked)} for n, m in bns.items()}}


# ---------------------------------------------------------------------------- main


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK",
                        "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")
           and not k.startswith("TORCHELASTIC")}
    env["OMP_NUM_THREADS"] = str(THREADS)
    return env


def launch(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return time.perf_counter() - t0


def wait_for(path, timeout=60):
    t0 = time.time()
    while not os.path.exists(path):
        if time.time() - t0 > timeout:
            raise SystemExit(f"{path} was not written")
        time.sleep(0.2)
    with open(path) as f:
        return json.load(f)


def max_diff(a, b):
    return max((abs(u - v) for u, v in zip(a, b)), default=0.0) if len(a) == len(b) else None


def state_diff(a, b):
    """Max abs difference of the parameters and of the (float) buffers of two state dicts."""
    params = {k for k in a if not any(k.endswith(s) for s in ("running_mean", "running_var", "num_batches_tracked"))}
    d = {"params": 0.0, "buffers": 0.0}
    for k in a:
        if a[k].is_floating_point():
            kind = "params" if k in params else "buffers"
            d[kind] = max(d[kind], (a[k] - b[k]).abs().max().item())
    return d


def main(out_path):
    torch.set_num_threads(THREADS)
    write_mnist()
    script = os.path.abspath(__file__)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    torchrun = [torchrun] if os.path.exists(torchrun) else [sys.executable, "-m", "torch.distributed.run"]
    result = {"torch": torch.__version__, "world_size": WORLD, "backend": "gloo", "threads": THREADS,
              "mnist_dir": MNIST_DIR, "models": {}, "launch_seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        result["launch_seconds"]["torch"] = launch(
            [*torchrun, "--standalone", "--nproc-per-node", str(WORLD), script, "--torch-worker", tmp])
        ranks = [wait_for(os.path.join(tmp, f"torch-{r}.json")) for r in range(WORLD)]
        runs = {tag: {name: {str(r): ranks[r][tag][name] for r in range(WORLD)} for name, _, _ in v}
                for tag, v in TORCH_RUNS.items()}
        for tag, v in LIGHTNING_RUNS.items():
            for name, order in v:
                result["launch_seconds"][f"{tag}/{name}"] = launch(
                    [sys.executable, script, "--lightning-worker", name, order, tmp])
                runs.setdefault(tag, {})[name] = {
                    str(r): wait_for(os.path.join(tmp, f"{tag}-{name}-{r}.json")) for r in range(WORLD)}
        result["lightning_file"] = {}
        for tag, manual in [("lit-ddp", "0"), ("lit-ddp-manual", "1"), ("lit-ddp-unused", "unused")]:
            result["launch_seconds"][f"lightning_file/{tag}"] = launch(
                [sys.executable, script, "--lightning-file-worker", tmp, tag, manual])
            result["lightning_file"][tag] = wait_for(os.path.join(tmp, f"{tag}.json"))
        states = {os.path.basename(p)[:-3]: torch.load(p) for p in glob.glob(os.path.join(tmp, "*.pt"))}
    import lightning

    result["lightning"] = lightning.__version__
    for name, cfg in MODELS.items():
        _, x, _ = seeded(name, "plain")
        n = len(x)
        per_rank = -(-n // WORLD)
        m = {**cfg, "train_samples": n, "samples_per_rank": per_rank,
             "steps_per_epoch": -(-per_rank // cfg["batch_size"]),
             "indices": rank_indices(name, n, True)}
        if name == "parity-mlp":
            m["single_process"] = parity_reference.vanilla_loop(name, cfg["seed"])[0]
            m["indices_unshuffled"] = rank_indices(name, n, False)
        else:
            m["single_process"] = mnist_single()
            m["union_single_process"] = mnist_single(union=True)
        checks = {}
        for tag in runs:
            if name not in runs[tag]:
                continue
            m[tag] = runs[tag][name]
            r0, r1 = m[tag]["0"], m[tag]["1"]
            d = state_diff(states[f"{tag}-{name}-0"], states[f"{tag}-{name}-1"])
            checks[tag] = {"params_identical_across_ranks": r0["params_sha256"] == r1["params_sha256"],
                           "params_max_abs_diff_across_ranks": d["params"],
                           "buffers_identical_across_ranks": r0["buffers_sha256"] == r1["buffers_sha256"],
                           "buffers_max_abs_diff_across_ranks": d["buffers"],
                           "same_dropout_masks_across_ranks": r0["dropout_masks"] == r1["dropout_masks"],
                           "steps_per_rank": len(r0["losses"])}
        pairs = [("torch", "lightning")] + ([("torch_datamodule", "lightning_datamodule")] if name == "parity-mlp" else [])
        for a, b in pairs:
            checks[f"{a}_vs_{b}"] = {
                "loss_max_abs_diff": {r: max_diff(m[a][r]["losses"], m[b][r]["losses"]) for r in ("0", "1")},
                "same_dropout_masks": all(m[a][r]["dropout_masks"] == m[b][r]["dropout_masks"] for r in ("0", "1")),
                "final_state_max_abs_diff": {r: state_diff(states[f"{a}-{name}-{r}"], states[f"{b}-{name}-{r}"])
                                             for r in ("0", "1")}}
        sp = m["single_process"]
        for tag in ("torch", "torch_plain"):
            if tag in m:
                r0, r1 = m[tag]["0"]["losses"], m[tag]["1"]["losses"]
                checks[f"{tag}_vs_single_process"] = {
                    "first_loss": {"single": sp[0], "rank0": r0[0], "rank1": r1[0]},
                    "max_abs_diff_rank0_vs_single_prefix": max_diff(r0, sp[:len(r0)]),
                    "max_abs_diff_rank1_vs_single_prefix": max_diff(r1, sp[:len(r1)])}
        if name == "mnist-cnn":
            mean = [(a + b) / 2 for a, b in zip(m["torch"]["0"]["losses"], m["torch"]["1"]["losses"])]
            checks["rank_mean_vs_union_single_process_max_abs_diff"] = max_diff(mean, m["union_single_process"])
        m["checks"] = checks
        result["models"][name] = m
    sync = sync_batchnorm_union("parity-mlp")
    plain = sync_batchnorm_union("parity-mlp", per_rank_batchnorm=True)
    ddp = result["models"]["parity-mlp"]["torch_datamodule"]
    sync["checks"] = {
        "same_dropout_masks_as_torch": all(sync["dropout_masks"][r] == ddp[r]["dropout_masks"] for r in ("0", "1")),
        "per_rank_batchnorm_vs_torch_loss_max_abs_diff": {r: max_diff(plain["losses"][r], ddp[r]["losses"])
                                                          for r in ("0", "1")},
        "vs_torch_loss_max_abs_diff": {r: max_diff(sync["losses"][r], ddp[r]["losses"]) for r in ("0", "1")}}
    # In float64 lthost's rounding and the union's differ by ~1e-13, not ~1e-5: the exact check.
    sync64 = sync_batchnorm_union("parity-mlp", dtype=torch.float64)
    result["sync_batchnorm"] = {"parity-mlp": sync, "parity-mlp-64-true": sync64}
    with open(out_path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out_path + ".tmp", out_path)
    print(f"wrote {out_path}: torch {torch.__version__}, lightning {lightning.__version__}")
    for name, m in result["models"].items():
        print(name, json.dumps(m["checks"], indent=1))
    print("sync_batchnorm parity-mlp", json.dumps(result["sync_batchnorm"]["parity-mlp"]["checks"], indent=1))
    print("launch seconds", result["launch_seconds"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--torch-worker"]:
        torch_worker(sys.argv[2])
    elif sys.argv[1:2] == ["--lightning-worker"]:
        lightning_worker(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1:2] == ["--lightning-file-worker"]:
        # MANUAL: "1" manual optimization, "unused" the unused layers with
        # `find_unused_parameters=True`. [ACCELERATOR DEVICES [BACKEND]]: tools/gpu-check.sh's runs on CUDA.
        extra = sys.argv[5:8]
        lightning_file_worker(sys.argv[2], sys.argv[3], sys.argv[4] == "1",
                              *(extra[:1] + [int(d) for d in extra[1:2]] + extra[2:3]),
                              unused=sys.argv[4] == "unused")
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/ddp.json")
