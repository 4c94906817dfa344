"""`make bench`, section "languages" (issue 8): the digits MLP written in Rust, Python
(componentize-py), JavaScript (componentize-js) and C (wit-bindgen c + clang), each run by
lthost: the component's size, start-up from process start to the first training step
with an empty component cache (`cold`: compiled) and a warm one (`cached`), the training
time of 15 epochs (600 steps), and the cost of one host call across the component boundary
(`tensor.numel` made `probe_calls` times per step: the extra training time over 600 ×
probe_calls calls)."""

import os
import re
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LTHOST = os.path.join(ROOT, "target", "release", "lthost")
PLUGINS = os.path.join(ROOT, "target", "plugins")
LANGUAGES = [("Rust", "digits-mlp"), ("Python", "python-digits"), ("JavaScript", "js-digits"), ("C", "c-digits")]
COLD_RUNS = 3
RUNS = 5
PROBE_CALLS = 400
STEPS = 600


def _fit(plugin, cache, extra=()):
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, LTHOST_CACHE_DIR=cache)
        out = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, f"{plugin}.wasm"), "--config", os.path.join(ROOT, "plugins/digits-mlp/run.toml"),
                              "--no-progress-bar", "--threads", "1", "--set", "trainer.enable_checkpointing=false", *extra],
                             cwd=d, env=env, capture_output=True, text=True, check=True).stdout
    start = float(re.search(r"start-up\s+([0-9.]+) s", out).group(1))
    train = float(re.search(r"timer\s+train ([0-9.]+) s", out).group(1))
    return start, train


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def language_costs():
    rows = []
    for lang, plugin in LANGUAGES:
        size = os.path.getsize(os.path.join(PLUGINS, f"{plugin}.wasm"))
        with tempfile.TemporaryDirectory() as cache:
            cold = []
            for _ in range(COLD_RUNS):
                for f in os.listdir(cache):
                    os.remove(os.path.join(cache, f))
                cold.append(_fit(plugin, cache, ["--max-epochs", "1"])[0])
            cached, plain, probed = [], [], []
            for _ in range(RUNS):
                s, t = _fit(plugin, cache)
                cached.append(s)
                plain.append(t)
                probed.append(_fit(plugin, cache, ["--hparams", f'{{"probe_calls": {PROBE_CALLS}}}'])[1])
        per_call = (min(probed) - min(plain)) / (STEPS * PROBE_CALLS)
        rows.append({"language": lang, "plugin": plugin, "bytes": size, "cold": _median(cold), "cached": _median(cached), "train": min(plain), "call_ns": per_call * 1e9})
    return rows


def table(rows):
    lines = [
        "## Languages: the digits MLP in Rust, Python, JavaScript and C",
        "",
        f"Same model, same seed, same losses (tests/e2e/languages.rs). Start-up: median of {COLD_RUNS} cold and {RUNS} cached runs; "
        f"training: fastest of {RUNS}, 15 epochs = {STEPS} steps, 1 thread; host call: `tensor.numel` {PROBE_CALLS}× per step, "
        "the extra training time per call.",
        "",
        "| language | component | start-up cold (s) | start-up cached (s) | training (s) | vs Rust | host call (ns) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rust = rows[0]["train"]
    for r in rows:
        lines.append(f"| {r['language']} | {r['bytes'] / 1e6:.2f} MB | {r['cold']:.2f} | {r['cached']:.2f} | {r['train']:.3f} | {r['train'] / rust:.2f}× | {r['call_ns']:.0f} |")
    return lines + [""]
