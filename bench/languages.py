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
# make bench's transformer workload in Rust and as a plain Lightning file (same losses:
# tests/e2e/lightning_files.rs), trained as the parity section trains it.
TRANSFORMERS = [("Rust", "tiny-transformer"), ("Python", "python-tiny-transformer")]
TRANSFORMER_EPOCHS = 12
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


def _transformer_fit(plugin):
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, f"{plugin}.wasm"), "--accelerator", "cpu", "--seed", "42",
                              "--max-epochs", str(TRANSFORMER_EPOCHS), "--no-progress-bar", "--threads", "1",
                              "--set", "trainer.enable_checkpointing=false", "--set", "trainer.logger=false"],
                             cwd=d, capture_output=True, text=True, check=True).stdout
    steps = int(re.search(r"global steps (\d+)", out).group(1))
    return float(re.search(r"timer\s+train ([0-9.]+) s", out).group(1)), steps


def transformer_costs():
    """{language: [training seconds]} for tiny-transformer in Rust and Python, alternating
    round by round (after one dropped run each), and the steps per run."""
    runs = {lang: [] for lang, _ in TRANSFORMERS}
    steps = 0
    for _, plugin in TRANSFORMERS:
        _transformer_fit(plugin)
    for i in range(RUNS):
        for lang, plugin in (TRANSFORMERS if i % 2 == 0 else TRANSFORMERS[::-1]):
            t, steps = _transformer_fit(plugin)
            runs[lang].append(t)
    return {"train": runs, "steps": steps}


def transformer_table(t):
    if not t:
        return []
    rust = t["train"]["Rust"]
    lines = [
        "## Languages: tiny-transformer in Rust and as a Lightning file (Python)",
        "",
        f"plugins/tiny-transformer and plugins/python-tiny-transformer (the same model as a plain Lightning file, built by "
        f"`lthost build`; same losses), {TRANSFORMER_EPOCHS} epochs = {t['steps']} steps, seed 42, 1 thread, logger off; "
        f"{RUNS} runs each, alternating, median (min–max), the ratio to Rust taken round by round.",
        "",
        "| language | training (s) | per step (ms) | vs Rust |",
        "|---|---:|---:|---:|",
    ]
    for lang, _ in TRANSFORMERS:
        xs = t["train"][lang]
        lines.append(f"| {lang} | {spread(xs, '{:.3f}')} | {median(xs) / t['steps'] * 1e3:.2f} | "
                     f"{ratio_spread([a / b for a, b in zip(xs, rust)])}× |")
    return lines + [""]


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
