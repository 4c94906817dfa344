"""lthost / native on one parity workload, many alternating rounds: the narrow check behind
`make bench`'s parity rows, for chasing the last per cent of issue 16's ≤ 1.03 goal on a noisy
machine (each run its own process, as make bench runs them; the first round dropped; the
order swapped every round). Needs `make plugins` and the native baseline
(`cargo build --release -p lthost --example native_bench`).

    .venv/bin/python bench/native_pair.py tiny-transformer --threads 1 --rounds 60
"""

import argparse
import statistics

import parity
from common import median_ci


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=sorted(parity.WORKLOADS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    a = p.parse_args()
    parity.mnist_dir()  # mnist-cnn's data
    epochs = parity.WORKLOADS[a.workload]
    ratios = []
    for rnd in range(a.rounds + 1):
        order = ["native", "lthost"] if rnd % 2 == 0 else ["lthost", "native"]
        fit = {runner: parity.one_run(runner, a.workload, epochs, a.threads)["fit"] for runner in order}
        if rnd:
            ratios.append(fit["lthost"] / fit["native"])
    lo, hi = median_ci(ratios)
    print(f"{a.workload}, {a.threads} thread(s), {a.rounds} rounds: lthost / native {statistics.median(ratios):.3f} "
          f"[{lo:.3f}–{hi:.3f}] (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
