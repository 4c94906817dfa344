"""`make bench`, section "languages" (issue 8): the digits MLP written in Rust, Python
(componentize-py), JavaScript (componentize-js) and C (wit-bindgen c + clang), each run by
lthost: the component's size, start-up from process start to the first training step
with an empty component cache (`cold`: compiled) and a warm one (`cached`), the training
time of 15 epochs (600 steps), and the cost of one host call across the component boundary
(`tensor.numel` made `probe_calls` times per step: the extra training time over 600 ×
probe_calls calls, taken within each round). The languages alternate round by round;
ratios are taken round by round; median (min–max)."""

import os
import re
import subprocess
import tempfile

from common import LTHOST, PLUGINS, ROOT, median, ratio_spread, spread

LANGUAGES = [("Rust", "digits-mlp"), ("Python", "python-digits"), ("JavaScript", "js-digits"), ("C", "c-digits")]
COLD_RUNS = 3
RUNS = int(os.environ.get("BENCH_ROUNDS", "10"))
PROBE_CALLS = 400
STEPS = 600


def _fit(plugin, cache, extra=()):
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, LTHOST_CACHE_DIR=cache)
        out = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, f"{plugin}.wasm"), "--accelerator", "cpu", "--config", os.path.join(ROOT, "plugins/digits-mlp/run.toml"),
                              "--no-progress-bar", "--threads", "1", "--set", "trainer.enable_checkpointing=false", *extra],
                             cwd=d, env=env, capture_output=True, text=True, check=True).stdout
    start = float(re.search(r"start-up\s+([0-9.]+) s", out).group(1))
    train = float(re.search(r"timer\s+train ([0-9.]+) s", out).group(1))
    return start, train


def language_costs():
    """[{language, plugin, bytes, cold: [s], cached: [s], train: [s], probed: [s]}], runs round by round."""
    caches = {plugin: tempfile.TemporaryDirectory() for _, plugin in LANGUAGES}
    rows = [{"language": lang, "plugin": plugin, "bytes": os.path.getsize(os.path.join(PLUGINS, f"{plugin}.wasm")),
             "cold": [], "cached": [], "train": [], "probed": []} for lang, plugin in LANGUAGES]
    for r in rows:
        with tempfile.TemporaryDirectory() as cache:
            for _ in range(COLD_RUNS):
                for f in os.listdir(cache):
                    os.remove(os.path.join(cache, f))
                r["cold"].append(_fit(r["plugin"], cache, ["--max-epochs", "1"])[0])
        _fit(r["plugin"], caches[r["plugin"]].name, ["--max-epochs", "1"])  # fills its cache
    for i in range(RUNS):
        for r in (rows if i % 2 == 0 else rows[::-1]):
            cache = caches[r["plugin"]].name
            s, t = _fit(r["plugin"], cache)
            r["cached"].append(s)
            r["train"].append(t)
            r["probed"].append(_fit(r["plugin"], cache, ["--hparams", f'{{"probe_calls": {PROBE_CALLS}}}'])[1])
    for c in caches.values():
        c.cleanup()
    return rows


def table(rows):
    lines = [
        "## Languages: the digits MLP in Rust, Python, JavaScript and C",
        "",
        f"Same model, same seed, same losses (tests/e2e/languages.rs). Start-up: median of {COLD_RUNS} cold and {RUNS} cached runs; "
        f"training: {RUNS} runs, 15 epochs = {STEPS} steps, 1 thread, the languages alternating, median (min–max), the ratio to Rust "
        f"taken round by round; host call: `tensor.numel` {PROBE_CALLS}× per step, the extra training time per call (within each run pair).",
        "",
        "| language | component | start-up cold (s) | start-up cached (s) | training (s) | vs Rust | host call (ns) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rust = rows[0]["train"]
    for r in rows:
        calls = [(p - t) / (STEPS * PROBE_CALLS) * 1e9 for p, t in zip(r["probed"], r["train"])]
        lines.append(f"| {r['language']} | {r['bytes'] / 1e6:.2f} MB | {median(r['cold']):.2f} | {median(r['cached']):.2f} | "
                     f"{spread(r['train'], '{:.3f}')} | {ratio_spread([a / b for a, b in zip(r['train'], rust)])}× | {spread(calls, '{:.0f}')} |")
    return lines + [""]
