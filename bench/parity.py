"""`make bench`, section "parity workloads" (issue 9): Lightning's parity models trained
four ways on the same data, seed and thread count — native (the same training written
against `tch` in Rust, no WebAssembly: host/examples/native_bench.rs), lthost with the Rust
plugin, vanilla PyTorch and PyTorch Lightning 2.6 (bench/run_torch.py) — with 1 and 2
libtorch threads. Each run is its own process; per run the epochs after the first are
timed (the median), and the table keeps the median over RUNS runs, the last step's loss
(they must agree), the seconds from process start to the first training step and the
process's peak RSS."""

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
WORKLOADS = {"parity-rnn": 6, "parity-mlp": 20}  # epochs
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


def _one(runner, workload, epochs, threads):
    """(seconds per epoch after the first, last loss, start-up s, peak RSS MiB)."""
    if runner == "lthost":
        with tempfile.TemporaryDirectory() as d:
            out, rss = _run([LTHOST, "fit", os.path.join(PLUGINS, f"{workload}.wasm"), "--max-epochs", str(epochs), "--threads", str(threads),
                             "--seed", str(SEED), "--no-progress-bar", "--set", "trainer.enable_checkpointing=false", "--set", "trainer.logger=false",
                             "--set", "trainer.enable_model_summary=false"], cwd=d)
        epoch = float(re.search(r"epoch time\s+([0-9.]+) s median", out).group(1))
        loss = float(re.search(r"train_loss\s+([0-9.eE+-]+)", out).group(1))
        start = float(re.search(r"start-up\s+([0-9.]+) s", out).group(1))
    else:
        cmd = [NATIVE, workload, str(epochs), str(threads), str(SEED)] if runner == "native" else \
            [sys.executable, os.path.join(ROOT, "bench", "run_torch.py"), "vanilla" if runner == "PyTorch" else "lightning", workload, str(epochs), str(threads), str(SEED)]
        out, rss = _run(cmd)
        r = json.loads(out.strip().splitlines()[-1])
        epoch, loss, start = _median(r["epoch_seconds"][1:]), r["last_loss"], r["first_step"]
    return epoch, loss, start, rss


def parity_runs():
    """{(workload, threads): {runner: {...}}}."""
    results = {}
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
            results[(workload, threads)] = {r: {"epoch": _median(v["epoch"]), "loss": v["loss"], "start": _median(v["start"]), "rss": v["rss"]} for r, v in rows.items()}
    return results


def table(results):
    lines = [
        "## Parity workloads: native tch, lthost, PyTorch, Lightning",
        "",
        f"Lightning's parity models (ParityModuleRNN: LSTM 10→20 + Linear, 300×100×10 sequences, batch 30; ParityModuleMNIST: "
        f"Linear-tanh-BatchNorm-Dropout-Linear on 640 MNIST-shaped images, batch 128), Adam 0.02, seed {SEED}; "
        f"{', '.join(f'{w} {e} epochs' for w, e in WORKLOADS.items())}. Seconds per epoch: median over the epochs after the first, "
        f"median of {RUNS} runs, each its own process. Peak RSS: the process's own (wait4), the largest of its runs.",
        "",
        "| workload | threads | runner | s / epoch | lthost / this | last loss | start-up (s) | peak RSS (MiB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for (workload, threads), rows in results.items():
        lt = rows["lthost"]["epoch"]
        for runner in RUNNERS:
            r = rows[runner]
            ratio = "" if runner == "lthost" else f"{lt / r['epoch']:.2f}"
            rss = f"{r['rss']:.0f}"
            lines.append(f"| {workload} | {threads} | {runner} | {r['epoch']:.4f} | {ratio} | {r['loss']:.6f} | {r['start']:.2f} | {rss} |")
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(table(parity_runs())))
