"""`make bench`, section "parity workloads" (issue 9): Lightning's parity models, a CNN and
a small transformer trained four ways on the same data, seed and thread count — native (the same training written
against `tch` in Rust, no WebAssembly: host/examples/native_bench.rs), lthost with the Rust
plugin, vanilla PyTorch and PyTorch Lightning 2.6 (bench/run_torch.py) — with 1 and 2
libtorch threads. Each run is its own process; per run the epochs after the first are
timed (the median), and the table keeps the median over RUNS runs, the last step's loss
(they must agree), the seconds from process start to the first training step and the
process's peak RSS."""

import csv
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LTHOST = os.path.join(ROOT, "target", "release", "lthost")
NATIVE = os.path.join(ROOT, "target", "release", "examples", "native_bench")
PLUGINS = os.path.join(ROOT, "target", "plugins")
RUNS = int(os.environ.get("BENCH_PARITY_RUNS", "3"))
SEED = 42
WORKLOADS = {"parity-rnn": 6, "parity-mlp": 20, "mnist-cnn": 3, "tiny-transformer": 8}  # epochs
MNIST_IMAGES = 2048
RUNNERS = ["native", "lthost", "PyTorch", "Lightning"]


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def _run(cmd, cwd=None):
    """stdout and peak RSS (MiB) of one child process (its own rusage, from wait4)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{cmd}: exit {p.returncode}\n{err.read().decode(errors='replace')[-2000:]}")
    return out, usage.ru_maxrss / 1024


def write_mnist(d):
    """MNIST-format IDX files of seeded random images (the CNN workload's data)."""
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import transforms_reference as t

    g = torch.Generator().manual_seed(5)
    for prefix, n in [("train", MNIST_IMAGES), ("t10k", 64)]:
        t.write_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte"), torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8))
        t.write_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte"), torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8))


def _lthost_args(workload):
    if workload == "mnist-cnn":
        return ["--data-dir", os.environ["BENCH_MNIST_DIR"], "--set", "trainer.limit_val_batches=0"]
    return []


def _one(runner, workload, epochs, threads):
    """(seconds per epoch after the first, last loss, start-up s, peak RSS MiB)."""
    if runner == "lthost":
        # Timed with logging off, as Lightning runs; the last loss at full precision comes
        # from the CSV logger's metrics.csv (see lthost_loss).
        with tempfile.TemporaryDirectory() as d:
            out, rss = _run([LTHOST, "fit", os.path.join(PLUGINS, f"{workload}.wasm"), "--max-epochs", str(epochs), "--threads", str(threads),
                             "--seed", str(SEED), "--no-progress-bar", "--set", "trainer.enable_checkpointing=false", "--set", "trainer.logger=false",
                             "--set", "trainer.enable_model_summary=false", *_lthost_args(workload)], cwd=d)
        epoch = float(re.search(r"epoch time\s+([0-9.]+) s median", out).group(1))
        loss = None
        start = float(re.search(r"start-up\s+([0-9.]+) s", out).group(1))
    else:
        cmd = [NATIVE, workload, str(epochs), str(threads), str(SEED)] if runner == "native" else \
            [sys.executable, os.path.join(ROOT, "bench", "run_torch.py"), "vanilla" if runner == "PyTorch" else "lightning", workload, str(epochs), str(threads), str(SEED)]
        out, rss = _run(cmd)
        r = json.loads(out.strip().splitlines()[-1])
        epoch, loss, start = _median(r["epoch_seconds"][1:]), r["last_loss"], r["first_step"]
    return epoch, loss, start, rss


def lthost_loss(workload, epochs, threads):
    """The last step's loss of an lthost run, from metrics.csv (logging every step)."""
    with tempfile.TemporaryDirectory() as d:
        _run([LTHOST, "fit", os.path.join(PLUGINS, f"{workload}.wasm"), "--max-epochs", str(epochs), "--threads", str(threads), "--seed", str(SEED),
              "--no-progress-bar", "--set", "trainer.enable_checkpointing=false", "--set", "trainer.log_every_n_steps=1", *_lthost_args(workload)], cwd=d)
        with open(os.path.join(d, "lightning_logs", "version_0", "metrics.csv")) as f:
            return float([r["train_loss"] for r in csv.DictReader(f) if r.get("train_loss")][-1])


def parity_runs():
    """{(workload, threads): {runner: {...}}}."""
    results = {}
    mnist = tempfile.TemporaryDirectory()
    os.environ["BENCH_MNIST_DIR"] = mnist.name
    write_mnist(mnist.name)
    for workload, epochs in WORKLOADS.items():
        for threads in (1, 2):
            rows = {r: {"epoch": [], "loss": None, "start": [], "rss": None} for r in RUNNERS}
            for _ in range(RUNS):
                for runner in RUNNERS:
                    e, l, s, rss = _one(runner, workload, epochs, threads)
                    row = rows[runner]
                    row["epoch"].append(e)
                    row["start"].append(s)
                    row["loss"] = l
                    row["rss"] = max(row["rss"] or 0, rss)
            rows["lthost"]["loss"] = lthost_loss(workload, epochs, threads)
            results[(workload, threads)] = {r: {"epoch": _median(v["epoch"]), "loss": v["loss"], "start": _median(v["start"]), "rss": v["rss"]} for r, v in rows.items()}
    return results


def table(results):
    lines = [
        "## Workloads: native tch, lthost, PyTorch, Lightning",
        "",
        f"Lightning's parity models (ParityModuleRNN: LSTM 10→20 + Linear, 300×100×10 sequences, batch 30; ParityModuleMNIST: "
        f"Linear-tanh-BatchNorm-Dropout-Linear on 640 MNIST-shaped images, batch 128; Adam 0.02) and mnist-cnn (two 3×3 convolutions, "
        f"max-pooling, Linear; {MNIST_IMAGES} 28×28 IDX images, 4/5 trained on, shuffled, batch 64, Adam 0.001) and tiny-transformer "
        f"(Embedding 16×32, one post-norm encoder block with 4-head attention and a 32→64→32 feed-forward, mean pooling, Linear; "
        f"512 sequences of 24 tokens, batch 32, Adam 0.001), seed {SEED}; "
        f"{', '.join(f'{w} {e} epochs' for w, e in WORKLOADS.items())}. Seconds per epoch: median over the epochs after the first, "
        f"median of {RUNS} runs, each its own process. Peak RSS: the process's own (wait4), the largest of its runs.",
        "",
        "| workload | threads | runner | s / epoch | lthost / this | last loss | start-up (s) | peak RSS (MiB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    goals = []
    for (workload, threads), rows in results.items():
        lt = rows["lthost"]["epoch"]
        native, light = lt / rows["native"]["epoch"], rows["Lightning"]["epoch"] / lt
        losses = [rows[r]["loss"] for r in RUNNERS]
        agree = max(losses) - min(losses) <= 1e-4 * max(1.0, abs(losses[0]))
        # The ≥ 1.3× over Lightning goal is for the parity models (Lightning's own benchmark).
        vs_light = f"({'met' if light >= 1.3 else 'missed'}: ≥ 1.3)" if workload.startswith("parity") else "(no goal)"
        goals.append(f"- {workload}, {threads} thread{'s' if threads > 1 else ''}: lthost / native {native:.2f} "
                     f"({'met' if native <= 1.03 else 'missed'}: ≤ 1.03); Lightning / lthost {light:.2f} {vs_light}; "
                     f"losses {'agree' if agree else 'DISAGREE'} ({min(losses):.6f}–{max(losses):.6f})")
        for runner in RUNNERS:
            r = rows[runner]
            ratio = "" if runner == "lthost" else f"{lt / r['epoch']:.2f}"
            rss = f"{r['rss']:.0f}"
            lines.append(f"| {workload} | {threads} | {runner} | {r['epoch']:.4f} | {ratio} | {r['loss']:.6f} | {r['start']:.2f} | {rss} |")
    return lines + ["", "Goals (issue 9), read off this table:", ""] + goals + [""]


if __name__ == "__main__":
    print("\n".join(table(parity_runs())))
