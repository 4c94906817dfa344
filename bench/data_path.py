"""`make bench`, sections "fetch throughput" and "waiting for data" (issue 6): batches per
second of lthost's DataLoader (inline and prefetching, host/examples/fetch_bench.rs) against
PyTorch's, and the share of the digits run's training time spent waiting for batches. Runs
alternate, ROUNDS each; ratios are taken round by round, median (min–max)."""

import json
import os
import re
import subprocess
import sys
import tempfile

from common import EXAMPLES, LTHOST, PLUGINS, ROOT, THREADS, ratio_spread, spread

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))

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
    """[(lthost's {prefetch_0, prefetch_2}, PyTorch's), one per round] in batches per second."""
    exe = os.path.join(EXAMPLES, "fetch_bench")
    if not os.path.exists(exe):
        sys.exit(f"{exe} is missing: run `make bench` (it builds the example)")
    rounds = []
    for _ in range(ROUNDS):
        lt = json.loads(subprocess.run([exe], capture_output=True, text=True, check=True).stdout)
        pt = json.loads(subprocess.run([sys.executable, "-c", TORCH_FETCH], capture_output=True, text=True, check=True).stdout)
        rounds.append(({k: v["batches_per_sec"] for k, v in lt.items()}, pt["batches_per_sec"]))
    return rounds


def data_wait_share():
    """{prefetch depth: [(wait s, share %, training s), one per round]} of the digits run."""
    out = {0: [], 2: []}
    for _ in range(ROUNDS):
        for depth in out:
            with tempfile.TemporaryDirectory() as d:
                r = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, "digits-mlp.wasm"), "--accelerator", "cpu",
                                    "--data-dir", os.path.join(ROOT, "plugins", "digits-mlp", "data"), "--max-epochs", "15",
                                    "--no-progress-bar", "--threads", str(THREADS), "--set", f"trainer.prefetch_batches={depth}"],
                                   cwd=d, capture_output=True, text=True, check=True).stdout
            m = re.search(r"data wait\s+([0-9.]+) s \(([0-9.]+)% of training\)", r)
            t = re.search(r"timer\s+train ([0-9.]+) s", r)
            assert m and t, r
            out[depth].append((float(m.group(1)), float(m.group(2)), float(t.group(1))))
    return out


def fetch_table(rounds):
    pt = [p for _, p in rounds]
    lines = [
        "## Fetch throughput",
        "",
        "60 000 × 784 float32 rows and int64 labels, batch 64, shuffled, three passes, 1 thread: "
        "lthost gathers each batch with one `index_select` per column; PyTorch's DataLoader "
        f"indexes the TensorDataset row by row and collates. {len(rounds)} alternating rounds, median (min–max); "
        "the ratio is taken round by round: median [95% CI of the median] (min–max).",
        "",
        "| fetcher | batches / s | lthost / PyTorch |",
        "|---|---:|---:|",
        f"| PyTorch DataLoader (num_workers=0) | {spread(pt, '{:.0f}')} | |",
    ]
    for key, name in [("prefetch_0", "lthost, inline"), ("prefetch_2", "lthost, 2 batches prefetched")]:
        lt = [l[key] for l, _ in rounds]
        lines.append(f"| {name} | {spread(lt, '{:.0f}')} | {ratio_spread([a / b for a, b in zip(lt, pt)], '{:.1f}')}× |")
    return lines + [""]


def wait_table(wait):
    lines = [
        "## Waiting for data (digits, 15 epochs)",
        "",
        f"{len(wait[0])} runs per depth, alternating; median (min–max).",
        "",
        "| prefetch_batches | data wait (s) | share of training time (%) | training time (s) |",
        "|---:|---:|---:|---:|",
    ]
    for depth, runs in sorted(wait.items()):
        lines.append(f"| {depth} | {spread([r[0] for r in runs], '{:.3f}')} | {spread([r[1] for r in runs], '{:.1f}')} | "
                     f"{spread([r[2] for r in runs], '{:.3f}')} |")
    return lines + [""]

