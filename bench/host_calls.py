"""`make bench`, section "host calls" (issue 16): the cost of one host call from a Rust guest
for a tiny op (neg of a one-element tensor), through the typed WIT method (`tensor.unary`,
the surface before issue 16) and through the generic ATen call (`aten::neg`, resolved once,
as the generated bindings call it), measured inside one plugin instance
(tests/plugins/aten-probe, hyper-parameter `call_cost`): ROUNDS rounds of CALLS calls each,
typed then generic within a round; each round's ratio generic / typed; ns per call, median
(min–max), the ratio as median [95% CI] (min–max)."""

import os
import re
import subprocess
import tempfile

from common import LTHOST, PLUGINS, median, ratio_spread, spread

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))
CALLS = 20_000


def call_costs():
    """{"typed": [ns], "generic": [ns]}, one value per round (the first round dropped)."""
    hp = f'{{"call_cost": {{"rounds": {ROUNDS + 1}, "calls": {CALLS}}}}}'
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, "aten-probe.wasm"), "--accelerator", "cpu", "--max-epochs", "1",
                              "--no-progress-bar", "--threads", "1", "--hparams", hp], cwd=d, capture_output=True, text=True, check=True).stderr
    rounds = re.findall(r"call-cost: round (\d+) typed ([0-9.]+) ns generic ([0-9.]+) ns", out)
    assert len(rounds) == ROUNDS + 1, out
    return {"typed": [float(t) for _, t, _ in rounds[1:]], "generic": [float(g) for _, _, g in rounds[1:]]}


def summary_row(c):
    return (f"| one host call from a Rust guest, a tiny op: typed WIT method / generic ATen call (ns); generic / typed | "
            f"{median(c['typed']):.0f} / {median(c['generic']):.0f}; {ratio_spread([g / t for g, t in zip(c['generic'], c['typed'])])} |")


def table(c):
    return [
        "## Host calls: typed WIT method vs generic ATen call",
        "",
        f"`neg` of a one-element tensor from a Rust guest (tests/plugins/aten-probe, `call_cost`), {len(c['typed'])} rounds of "
        f"{CALLS} calls each way in one instance (the first round dropped), typed then generic within a round; the handle's drop "
        "is in both. The generic call is the Rust SDK's plain form for an operator given only tensors: `aten.apply-unary` "
        "by the operator's index in the plugin's table, which the host runs on the operator's unboxed kernel through a "
        "typed handle made at resolve time (`host/csrc/aten_dispatch.cpp`, `direct`); other shapes convert their "
        "arguments by the schema first (`SHAPES`), the rest are called boxed.",
        "",
        "| path | ns per call |",
        "|---|---:|",
        f"| typed (`tensor.unary(neg)`) | {spread(c['typed'], '{:.0f}')} |",
        f"| generic (`aten::neg`, `aten.apply-unary`) | {spread(c['generic'], '{:.0f}')} |",
        f"| generic / typed | {ratio_spread([g / t for g, t in zip(c['generic'], c['typed'])])} |",
        "",
    ]
