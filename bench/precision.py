"""`make bench`, section "precision" (issue 19): tiny-transformer and mnist-cnn trained in
`32-true` and `bf16-mixed` on the CPU by lthost (the Rust plugins, `--precision`) and by
Lightning 2.6.6 (bench/run_torch.py, `Trainer(precision=...)`), as bench/parity.py runs them:
each run its own process, the four runs of a round alternating (the order reversed every
other round), the first round dropped; a run's time is its fit (every training epoch) per
epoch. Ratios are taken round by round: bf16-mixed / 32-true for each runner, Lightning /
lthost for each precision. The last losses of lthost and Lightning must agree in each
precision (to 1e-6, relative) or `make bench` fails."""

import csv
import json
import os
import re
import sys
import tempfile

import parity
from common import ratio_spread, spread

WORKLOADS = {"tiny-transformer": 12, "mnist-cnn": 3}
PRECISIONS = ["32-true", "bf16-mixed"]
RUNNERS = ["lthost", "Lightning"]


def one_run(runner, workload, epochs, precision):
    """{fit: s per epoch, loss (Lightning's; lthost's comes from `lthost_loss`)}."""
    if runner == "lthost":
        with tempfile.TemporaryDirectory() as d:
            cmd = parity.lthost_cmd(workload, epochs, 1, "--precision", precision, "--set", "trainer.logger=false")
            out, _ = parity.measured(cmd, cwd=d)
        fit = re.search(r"epoch time .*; ([0-9.]+) s in all", out)
        assert fit, out
        return {"fit": float(fit.group(1)) / epochs, "loss": None}
    cmd = [sys.executable, os.path.join(parity.ROOT, "bench", "run_torch.py"), "lightning", workload, str(epochs), "1",
           str(parity.SEED), precision]
    env = {**os.environ, "GLIBC_TUNABLES": parity.HEAP_TUNABLES}
    out, _ = parity.measured(cmd, env=env)
    r = json.loads(out.strip().splitlines()[-1])
    return {"fit": sum(r["epoch_seconds"]) / epochs, "loss": r["last_loss"]}


def lthost_loss(workload, epochs, precision):
    """The last step's loss of an lthost run, from metrics.csv (logging every step)."""
    with tempfile.TemporaryDirectory() as d:
        cmd = parity.lthost_cmd(workload, epochs, 1, "--precision", precision, "--set", "trainer.log_every_n_steps=1")
        parity.measured(cmd, cwd=d)
        with open(os.path.join(d, "lightning_logs", "version_0", "metrics.csv")) as f:
            return float([r["train_loss"] for r in csv.DictReader(f) if r.get("train_loss")][-1])


def precision_runs():
    """{workload: {"runner/precision": [run, ...]}} (one run per timed round)."""
    parity.mnist_dir()
    pairs = [(r, p) for p in PRECISIONS for r in RUNNERS]
    results = {}
    for workload, epochs in WORKLOADS.items():
        runs = {f"{r}/{p}": [] for r, p in pairs}
        for rnd in range(parity.ROUNDS + 1):
            for runner, precision in pairs if rnd % 2 == 0 else pairs[::-1]:
                run = one_run(runner, workload, epochs, precision)
                if rnd > 0:
                    runs[f"{runner}/{precision}"].append(run)
        for p in PRECISIONS:
            loss = lthost_loss(workload, epochs, p)
            for run in runs[f"lthost/{p}"]:
                run["loss"] = loss
        results[workload] = runs
        print(f"  precision, {workload}: {parity.ROUNDS} rounds done", file=sys.stderr)
    return results


def check(results):
    """Where lthost's and Lightning's last losses differ (make bench fails on any)."""
    bad = []
    for workload, runs in results.items():
        for p in PRECISIONS:
            a, b = runs[f"lthost/{p}"][0]["loss"], runs[f"Lightning/{p}"][0]["loss"]
            if abs(a - b) > parity.LOSS_TOLERANCE * max(1.0, abs(b)):
                bad.append(f"{workload} {p}: lthost {a!r}, Lightning {b!r}")
    return bad


def table(results, measured_at=None):
    if not results:
        return []
    lines = [
        "## Precision: bf16-mixed and 32-true on the CPU",
        "",
        f"{', '.join(f'{w} {e} epochs' for w, e in WORKLOADS.items())} (the models of the workloads table), 1 libtorch thread, "
        "trained by lthost (`--precision`) and by Lightning (`Trainer(precision=...)`). bf16-mixed: the steps under "
        "libtorch's CPU autocast (bfloat16 matmuls and convolutions), weights and optimizer in float32. **per epoch**: the "
        f"fit's seconds per epoch, median (min–max) of {parity.ROUNDS} rounds, the four runs of a round alternating. Ratios "
        "round by round, median [95% CI of the median] (min–max)." + (f" Measured {measured_at}." if measured_at else ""),
        "",
        "| workload | runner | 32-true per epoch (s) | bf16-mixed per epoch (s) | bf16-mixed / 32-true | last loss 32-true | last loss bf16-mixed |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for workload, runs in results.items():
        for r in RUNNERS:
            a, b = runs[f"{r}/32-true"], runs[f"{r}/bf16-mixed"]
            ratio = [y["fit"] / x["fit"] for x, y in zip(a, b)]
            lines.append(f"| {workload} | {r} | {spread([x['fit'] for x in a], '{:.4f}')} | "
                         f"{spread([x['fit'] for x in b], '{:.4f}')} | {ratio_spread(ratio)} | {a[0]['loss']:.6f} | "
                         f"{b[0]['loss']:.6f} |")
        for p in PRECISIONS:
            ratio = [y["fit"] / x["fit"] for x, y in zip(runs[f"lthost/{p}"], runs[f"Lightning/{p}"])]
            lines.append(f"| {workload} | Lightning / lthost, {p} | | | {ratio_spread(ratio)} | | |")
    bad = check(results)
    lines += ["", "lthost's and Lightning's last losses " + ("agree in both precisions." if not bad else
                                                              "DISAGREE: " + "; ".join(bad)), ""]
    return lines


if __name__ == "__main__":
    r = precision_runs()
    print("\n".join(table(r)))
    sys.exit(1 if check(r) else 0)
