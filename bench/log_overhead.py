"""`make bench`, section "logging overhead" (issue 5): the cost per training step of logging
three values every step (`log_every_n_steps = 1`) with no logger, the CSV logger,
TensorBoard, both, and a WASM logger plugin; and the same model in PyTorch Lightning with
logger=False, CSVLogger and TensorBoardLogger. The model is tiny (Linear(4, 1), batch 4) so
that the per-step overhead, not the math, is what is measured. Time per step: the Timer's
training clock for lthost, on_train_start..on_train_end for Lightning. The configurations
alternate round by round (lthost ROUNDS rounds, Lightning LIGHTNING_ROUNDS: a Lightning run
takes ~10 s); an overhead is the difference from no logger taken within each round, median
(min–max)."""

import os
import re
import subprocess
import sys
import tempfile

from common import LTHOST, PLUGINS, THREADS, spread

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))
LIGHTNING_ROUNDS = max(1, ROUNDS // 2)
SAMPLES = 8000  # lthost: 2000 steps per epoch at batch 4
LIGHTNING_SAMPLES = 4000  # Lightning is slower: 1000 steps per epoch
EPOCHS = 2


def lthost_step_time(loggers):
    """Seconds per training step of one lthost run."""
    steps = SAMPLES // 4 * EPOCHS
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "run.toml")
        with open(cfg, "w") as f:
            f.write(
                f"[trainer]\nmax_epochs = {EPOCHS}\nlog_every_n_steps = 1\nlimit_val_batches = 0\n"
                f"num_sanity_val_steps = 0\nseed = 0\nthreads = {THREADS}\nenable_checkpointing = false\n"
                f"enable_progress_bar = false\nenable_model_summary = false\naccelerator = \"cpu\"\n"
                f"logger = {'true' if loggers else 'false'}\nloggers = {list(loggers) or ['csv']!r}\n"
                f"[hparams]\nsamples = {SAMPLES}\n".replace("'", '"')
            )
        out = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, "hook-recorder.wasm"), "--config", cfg],
                             cwd=d, capture_output=True, text=True, check=True).stdout
    m = re.search(r"timer\s+train ([0-9.]+) s", out)
    g = re.search(r"global steps (\d+)", out)
    assert m and g and int(g.group(1)) == steps, out
    return float(m.group(1)) / steps


LIGHTNING_SCRIPT = r"""
import sys, time, tempfile, warnings, logging
warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
import torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
torch.set_num_threads(int(sys.argv[2]))
kind, samples, epochs = sys.argv[1], int(sys.argv[3]), int(sys.argv[4])

class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.seen = 0
    def training_step(self, batch, i):
        x, y = batch
        loss = F.mse_loss(self.layer(x), y)
        self.seen += 1
        self.log("train_loss", loss, prog_bar=True)
        self.log("seen", float(self.seen))
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        return loss
    def on_train_start(self):
        self.t0 = time.perf_counter()
    def on_train_end(self):
        self.t1 = time.perf_counter()
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

torch.manual_seed(0)
x = torch.randn(samples, 4)
data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True) * 0.5), batch_size=4)
with tempfile.TemporaryDirectory() as d:
    logger = {"none": False, "csv": L.pytorch.loggers.CSVLogger(d), "tensorboard": L.pytorch.loggers.TensorBoardLogger(d)}[kind]
    t = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=logger, log_every_n_steps=1, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=d)
    m = M()
    t.fit(m, data)
    print((m.t1 - m.t0) / t.global_step)
"""


def lightning_step_time(kind):
    """Seconds per training step of one Lightning run."""
    out = subprocess.run([sys.executable, "-c", LIGHTNING_SCRIPT, kind, str(THREADS), str(LIGHTNING_SAMPLES), str(EPOCHS)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def configurations():
    jsonl = os.path.join(PLUGINS, "jsonl-logger.wasm")
    return [
        ("lthost", "no logger", lambda: lthost_step_time([])),
        ("lthost", "csv", lambda: lthost_step_time(["csv"])),
        ("lthost", "tensorboard", lambda: lthost_step_time(["tensorboard"])),
        ("lthost", "csv + tensorboard", lambda: lthost_step_time(["csv", "tensorboard"])),
        ("lthost", "jsonl-logger.wasm (plugin)", lambda: lthost_step_time([jsonl])),
        ("Lightning 2.6", "logger=False", lambda: lightning_step_time("none")),
        ("Lightning 2.6", "CSVLogger", lambda: lightning_step_time("csv")),
        ("Lightning 2.6", "TensorBoardLogger", lambda: lightning_step_time("tensorboard")),
    ]


def logging_overhead():
    """[(trainer, loggers, [seconds per step, one per round])]."""
    configs = configurations()
    times = [[] for _ in configs]
    for r in range(ROUNDS):
        order = list(enumerate(configs)) if r % 2 == 0 else list(enumerate(configs))[::-1]
        for i, (trainer, _, fn) in order:
            if trainer == "lthost" or r < LIGHTNING_ROUNDS:
                times[i].append(fn())
    return [(t, l, ts) for (t, l, _), ts in zip(configs, times)]


def us(s):
    return f"{s * 1e6:.1f}"


def table(rows):
    base = {}
    for trainer, _, ts in rows:
        base.setdefault(trainer, ts)
    lines = [
        "## Logging overhead per training step",
        "",
        f"Linear(4, 1), batch 4, {SAMPLES // 4 * EPOCHS} steps ({LIGHTNING_SAMPLES // 4 * EPOCHS} in Lightning), three values logged every "
        "step (`log_every_n_steps = 1`), no validation, progress bar and checkpointing off. "
        f"lthost: {ROUNDS} rounds, Lightning: {LIGHTNING_ROUNDS}, the configurations alternating; median (min–max). The overhead is "
        "taken within each round (this configuration minus no logger).",
        "",
        "| trainer | loggers | µs / step | overhead over no logger (µs / step) |",
        "|---|---|---:|---:|",
    ]
    for trainer, loggers, ts in rows:
        over = "" if ts is base[trainer] else spread([(a - b) * 1e6 for a, b in zip(ts, base[trainer])], "{:+.1f}")
        lines.append(f"| {trainer} | {loggers} | {spread([t * 1e6 for t in ts], '{:.1f}')} | {over} |")
    return lines + [""]
