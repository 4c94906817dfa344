"""`make bench`: performance measured side by side in one run, on this machine.

Sections: parity workloads (native tch, lthost, PyTorch, Lightning: bench/parity.py),
logging overhead, start-up, fetch throughput, data wait, languages (bench/languages.py).

Section "logging overhead" (issue 5): the cost per training step of logging three values
every step (`log_every_n_steps = 1`) with no logger, the CSV logger, TensorBoard, both,
and a WASM logger plugin; and the same model in PyTorch Lightning with logger=False,
CSVLogger and TensorBoardLogger. The model is tiny (Linear(4, 1), batch 4) so that the
per-step overhead, not the math, is what is measured. Each configuration runs REPEATS
times; the table shows the median training time per step (the Timer's training clock for
lthost, on_train_start..on_train_end for Lightning) and the overhead over no logger.

Writes bench/results.md.

    .venv/bin/python bench/bench.py            (make bench; after make host plugins)
"""

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

from languages import language_costs, table as language_table
from parity import parity_runs, table as parity_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LTHOST = os.path.join(ROOT, "target", "release", "lthost")
PLUGINS = os.path.join(ROOT, "target", "plugins")
REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))
SAMPLES = 8000  # lthost: 2000 steps per epoch at batch 4
LIGHTNING_SAMPLES = 4000  # Lightning is slower: 1000 steps per epoch
LIGHTNING_ROUNDS = 4
EPOCHS = 2
THREADS = 1
# Plugins built here are signed with the development key; trust it (and only it).
os.environ.setdefault("LTHOST_TRUSTED_KEYS", os.path.join(ROOT, ".lthost", "trusted"))


def lthost_step_time(loggers, extra_args=()):
    """Seconds per training step of one run."""
    times = []
    steps = SAMPLES // 4 * EPOCHS
    for _ in range(1):
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
            out = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, "hook-recorder.wasm"), "--config", cfg, *extra_args],
                                 cwd=d, capture_output=True, text=True, check=True).stdout
            m = re.search(r"timer\s+train ([0-9.]+) s", out)
            g = re.search(r"global steps (\d+)", out)
            assert m and g and int(g.group(1)) == steps, out
            times.append(float(m.group(1)) / steps)
    return min(times)


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
    times = []
    for _ in range(1):
        out = subprocess.run([sys.executable, "-c", LIGHTNING_SCRIPT, kind, str(THREADS), str(LIGHTNING_SAMPLES), str(EPOCHS)],
                             capture_output=True, text=True, check=True).stdout
        times.append(float(out.strip().splitlines()[-1]))
    return min(times)


def startup_times():
    """Seconds from process start to the first training step: cold (empty component
    cache: compile) and cached, median of REPEATS runs each."""
    out = {}
    for kind in ("cold", "cached"):
        times = []
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, LTHOST_CACHE_DIR=cache, LTHOST_TRUSTED_KEYS=os.path.join(ROOT, ".lthost", "trusted"))
            if kind == "cached":
                subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, "parity-mlp.wasm"), "--max-epochs", "1", "--no-progress-bar"],
                               cwd=cache, env=env, capture_output=True, check=True)
            for _ in range(REPEATS):
                if kind == "cold":
                    for f in os.listdir(cache):
                        os.remove(os.path.join(cache, f))
                with tempfile.TemporaryDirectory() as d:
                    r = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, "parity-mlp.wasm"), "--max-epochs", "1", "--no-progress-bar",
                                        "--threads", str(THREADS)], cwd=d, env=env, capture_output=True, text=True, check=True).stdout
                m = re.search(r"start-up\s+([0-9.]+) s", r)
                assert m, r
                times.append(float(m.group(1)))
        times.sort()
        out[kind] = times[len(times) // 2]
    return out


TORCH_FETCH = r"""
import json, sys, time, torch
from torch.utils.data import DataLoader, TensorDataset
torch.set_num_threads(1)
torch.manual_seed(0)
n = 60000
x, y = torch.randn(n, 784), torch.randint(0, 10, (n,))
dl = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
t0 = time.perf_counter(); batches = 0
for _ in range(3):
    for bx, by in dl:
        batches += 1
s = time.perf_counter() - t0
print(json.dumps({"batches": batches, "seconds": s, "batches_per_sec": batches / s}))
"""


def fetch_throughput():
    """Batches per second: lthost's DataLoader (inline and prefetching) vs PyTorch's."""
    exe = os.path.join(ROOT, "target", "release", "examples", "fetch_bench")
    if not os.path.exists(exe):
        sys.exit(f"{exe} is missing: run `make bench` (it builds the example)")
    lt = json.loads(subprocess.run([exe], capture_output=True, text=True, check=True).stdout)
    pt = json.loads(subprocess.run([sys.executable, "-c", TORCH_FETCH], capture_output=True, text=True, check=True).stdout)
    return lt, pt


def data_wait_share():
    """The share of the digits run's training time spent waiting for batches, inline and prefetching."""
    out = {}
    for depth in (0, 2):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, "digits-mlp.wasm"), "--data-dir", os.path.join(ROOT, "plugins", "digits-mlp", "data"),
                                "--max-epochs", "15", "--no-progress-bar", "--threads", str(THREADS), "--set", f"trainer.prefetch_batches={depth}"],
                               cwd=d, capture_output=True, text=True, check=True).stdout
            m = re.search(r"data wait\s+([0-9.]+) s \(([0-9.]+)% of training\)", r)
            t = re.search(r"timer\s+train ([0-9.]+) s", r)
            assert m and t, r
            out[depth] = (float(m.group(1)), float(m.group(2)), float(t.group(1)))
    return out


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; torch {torch.__version__}, {THREADS} libtorch thread"


def us(s):
    return f"{s * 1e6:.1f}"


def main():
    started = time.time()
    jsonl = os.path.join(PLUGINS, "jsonl-logger.wasm")
    configs = [
        ("lthost", "no logger", lambda: lthost_step_time([])),
        ("lthost", "csv", lambda: lthost_step_time(["csv"])),
        ("lthost", "tensorboard", lambda: lthost_step_time(["tensorboard"])),
        ("lthost", "csv + tensorboard", lambda: lthost_step_time(["csv", "tensorboard"])),
        ("lthost", "jsonl-logger.wasm (plugin)", lambda: lthost_step_time([jsonl])),
        ("Lightning 2.6", "logger=False", lambda: lightning_step_time("none")),
        ("Lightning 2.6", "CSVLogger", lambda: lightning_step_time("csv")),
        ("Lightning 2.6", "TensorBoardLogger", lambda: lightning_step_time("tensorboard")),
    ]
    # Rounds over all configurations (so slow drifts of the machine hit each alike);
    # the fastest run of each is kept. Lightning takes part in the first LIGHTNING_ROUNDS.
    best = [float("inf")] * len(configs)
    for r in range(REPEATS):
        for i, (trainer, _, fn) in enumerate(configs):
            if trainer == "lthost" or r < LIGHTNING_ROUNDS:
                best[i] = min(best[i], fn())
    rows = [(t, l, b) for (t, l, _), b in zip(configs, best)]
    base = {"lthost": rows[0][2], "Lightning 2.6": rows[5][2]}
    start = startup_times()
    lt_fetch, pt_fetch = fetch_throughput()
    wait = data_wait_share()
    langs = language_costs()
    parity = parity_runs()
    lines = [
        "# lthost benchmarks",
        "",
        f"Machine: {machine()}.",
        f"Command: `make bench` (`.venv/bin/python bench/bench.py`), fastest of {REPEATS} runs per row, interleaved (Lightning: {LIGHTNING_ROUNDS}); "
        f"finished in {time.time() - started:.0f} s on {time.strftime('%Y-%m-%d')}.",
        "",
    ] + parity_table(parity) + [
        "## Logging overhead per training step",
        "",
        f"Linear(4, 1), batch 4, {SAMPLES // 4 * EPOCHS} steps ({LIGHTNING_SAMPLES // 4 * EPOCHS} in Lightning), three values logged every step "
        "(`log_every_n_steps = 1`), no validation, progress bar and checkpointing off.",
        "",
        "| trainer | loggers | µs / step | overhead over no logger (µs / step) | lthost / Lightning |",
        "|---|---|---:|---:|---:|",
    ]
    pairs = {"no logger": "logger=False", "csv": "CSVLogger", "tensorboard": "TensorBoardLogger"}
    light = {r[1]: r[2] for r in rows if r[0] != "lthost"}
    for trainer, loggers, t in rows:
        ratio = f"{t / light[pairs[loggers]]:.2f}" if trainer == "lthost" and loggers in pairs else ""
        lines.append(f"| {trainer} | {loggers} | {us(t)} | {us(t - base[trainer])} | {ratio} |")
    lines += [
        "",
        "## Start-up: process start to the first training step",
        "",
        "parity-mlp (a 215 KB Rust component), median of the runs; `cold` compiles the component "
        "(empty cache), `cached` loads it from the component cache. Most of what remains is loading "
        "libtorch_cpu (the CUDA library is preloaded only when a run may use CUDA).",
        "",
        "| component cache | seconds |",
        "|---|---:|",
        f"| cold | {start['cold']:.3f} |",
        f"| cached | {start['cached']:.3f} |",
        "",
        "## Fetch throughput",
        "",
        "60 000 × 784 float32 rows and int64 labels, batch 64, shuffled, three passes, 1 thread: "
        "lthost gathers each batch with one `index_select` per column; PyTorch's DataLoader "
        "indexes the TensorDataset row by row and collates.",
        "",
        "| fetcher | batches / s | lthost / PyTorch |",
        "|---|---:|---:|",
        f"| PyTorch DataLoader (num_workers=0) | {pt_fetch['batches_per_sec']:.0f} | |",
        f"| lthost, inline | {lt_fetch['prefetch_0']['batches_per_sec']:.0f} | {lt_fetch['prefetch_0']['batches_per_sec'] / pt_fetch['batches_per_sec']:.1f}× |",
        f"| lthost, 2 batches prefetched | {lt_fetch['prefetch_2']['batches_per_sec']:.0f} | {lt_fetch['prefetch_2']['batches_per_sec'] / pt_fetch['batches_per_sec']:.1f}× |",
        "",
        "## Waiting for data (digits, 15 epochs)",
        "",
        "| prefetch_batches | data wait (s) | share of training time | training time (s) |",
        "|---:|---:|---:|---:|",
    ] + [f"| {d} | {w[0]:.3f} | {w[1]:.1f}% | {w[2]:.3f} |" for d, w in sorted(wait.items())] + [""] + language_table(langs)
    text = "\n".join(lines)
    with open(os.path.join(ROOT, "bench", "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
