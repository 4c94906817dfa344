"""`make bench`, section "ddp" (issue 20): 2-process DDP with Gloo on the CPU, one libtorch
thread per process, parity-mlp and mnist-cnn trained by lthost (`--devices 2`, its own
launcher), by plain torch `DistributedDataParallel` under `torchrun --nproc-per-node 2`, and by
Lightning 2.6.6 `strategy="ddp", devices=2` (bench/run_ddp.py), and each model by one process
(lthost without `--devices`, bench/run_torch.py's vanilla torch) for the scaling efficiency.
Each run is its own launch, the five runs of a round alternating (the order reversed every
other round), the first round dropped; a run's time is rank 0's training epochs per epoch.
Ratios are taken round by round. Scaling efficiency: (one process's s per epoch) / (2 × two
processes' s per epoch), 1.0 when two processes halve an epoch. The three DDP runners' last
losses must agree (to 1e-6, relative) or `make bench` fails."""

import json
import os
import re
import subprocess
import sys
import tempfile

import parity
from common import ratio_spread, spread

WORKLOADS = {"parity-mlp": 60, "mnist-cnn": 3}
RUNNERS = ["lthost", "torch DDP", "Lightning", "lthost 1 process", "torch 1 process"]
DDP_RUNNERS = RUNNERS[:3]


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED")
           and not k.startswith(("TORCHELASTIC", "SLURM_"))}
    env["OMP_NUM_THREADS"] = "1"
    env["GLIBC_TUNABLES"] = parity.HEAP_TUNABLES
    return env


def python_run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {p.returncode}\n{p.stderr[-2000:]}")
    r = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
    return {"fit": sum(r["epoch_seconds"]) / len(r["epoch_seconds"]), "loss": r["last_loss"]}


def lthost_run(workload, epochs, devices):
    extra = ["--devices", "2"] if devices == 2 else []
    with tempfile.TemporaryDirectory() as d:
        cmd = parity.lthost_cmd(workload, epochs, 1, *extra, "--set", "trainer.log_every_n_steps=1")
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, env=clean_env(), timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"{cmd}: exit {p.returncode}\n{p.stderr[-2000:]}")
        fit = re.search(r"epoch time .*; ([0-9.]+) s in all", p.stdout)
        assert fit, p.stdout
        with open(os.path.join(d, "lightning_logs", "version_0", "metrics.csv")) as f:
            import csv

            loss = float([r["train_loss"] for r in csv.DictReader(f) if r.get("train_loss")][-1])
        return {"fit": float(fit.group(1)) / epochs, "loss": loss}


def one_run(runner, workload, epochs):
    script = os.path.join(parity.ROOT, "bench", "run_ddp.py")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    if runner == "lthost":
        return lthost_run(workload, epochs, 2)
    if runner == "lthost 1 process":
        return lthost_run(workload, epochs, 1)
    if runner == "torch DDP":
        return python_run([torchrun, "--standalone", "--nproc-per-node", "2", script, "torch", workload, str(epochs),
                           str(parity.SEED)])
    if runner == "Lightning":
        return python_run([sys.executable, script, "lightning", workload, str(epochs), str(parity.SEED)])
    return python_run([sys.executable, os.path.join(parity.ROOT, "bench", "run_torch.py"), "vanilla", workload,
                       str(epochs), "1", str(parity.SEED)])


def ddp_runs():
    """{workload: {runner: [run, ...]}} (one run per timed round)."""
    parity.mnist_dir()
    results = {}
    for workload, epochs in WORKLOADS.items():
        runs = {r: [] for r in RUNNERS}
        for rnd in range(parity.ROUNDS + 1):
            for runner in RUNNERS if rnd % 2 == 0 else RUNNERS[::-1]:
                run = one_run(runner, workload, epochs)
                if rnd > 0:
                    runs[runner].append(run)
        results[workload] = runs
        print(f"  ddp, {workload}: {parity.ROUNDS} rounds done", file=sys.stderr)
    return results


def check(results):
    """Where the DDP runners' last losses differ (make bench fails on any)."""
    bad = []
    for workload, runs in results.items():
        losses = [runs[r][0]["loss"] for r in DDP_RUNNERS]
        if max(losses) - min(losses) > parity.LOSS_TOLERANCE * max(1.0, abs(losses[0])):
            bad.append(f"{workload}: " + ", ".join(f"{r} {l!r}" for r, l in zip(DDP_RUNNERS, losses)))
    return bad


def table(results, measured_at=None):
    if not results:
        return []
    lines = [
        "## DDP: two processes with Gloo on the CPU",
        "",
        f"{', '.join(f'{w} {e} epochs' for w, e in WORKLOADS.items())}, 1 libtorch thread per process, on this 2-core "
        "machine: lthost `--devices 2` (its own launcher), torch's `DistributedDataParallel` under `torchrun "
        "--nproc-per-node 2`, Lightning `strategy=\"ddp\", devices=2`, and one process of lthost and of plain torch. "
        f"**per epoch**: rank 0's seconds per training epoch, median (min–max) of {parity.ROUNDS} rounds, the five runs "
        "of a round alternating, each its own launch. Ratios round by round, median [95% CI of the median] (min–max). "
        "**scaling**: one process's per-epoch time / (2 × two processes'), 1.0 when two processes halve an epoch."
        + (f" Measured {measured_at}." if measured_at else ""),
        "",
        "| workload | runner | per epoch (s) | / lthost | scaling 1 → 2 | last loss |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for workload, runs in results.items():
        base = [x["fit"] for x in runs["lthost"]]
        for r in RUNNERS:
            fits = [x["fit"] for x in runs[r]]
            rel = ratio_spread([f / b for f, b in zip(fits, base)]) if r != "lthost" else ""
            single = {"lthost": "lthost 1 process", "torch DDP": "torch 1 process"}.get(r)
            scale = ratio_spread([s["fit"] / (2 * d["fit"]) for s, d in zip(runs[single], runs[r])]) if single else ""
            lines.append(f"| {workload} | {r} | {spread(fits, '{:.4f}')} | {rel} | {scale} | {runs[r][0]['loss']:.6f} |")
    bad = check(results)
    lines += ["", "The three DDP runners' last losses " + ("agree." if not bad else "DISAGREE: " + "; ".join(bad)), ""]
    return lines


if __name__ == "__main__":
    r = ddp_runs()
    print("\n".join(table(r)))
    sys.exit(1 if check(r) else 0)
