"""`make bench`, section "start-up" (issue 3): seconds from process start to the first training
step of parity-mlp, with an empty component cache (`cold`: the component is compiled) and a
warm one (`cached`), ROUNDS runs each, alternating; median (min–max)."""

import os
import re
import subprocess
import tempfile

from common import LTHOST, PLUGINS, THREADS

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))


def _first_step(cache):
    env = dict(os.environ, LTHOST_CACHE_DIR=cache)
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([LTHOST, "fit", os.path.join(PLUGINS, "parity-mlp.wasm"), "--accelerator", "cpu", "--max-epochs", "1",
                              "--no-progress-bar", "--threads", str(THREADS)], cwd=d, env=env, capture_output=True, text=True, check=True).stdout
    m = re.search(r"start-up\s+([0-9.]+) s", out)
    assert m, out
    return float(m.group(1))


def startup_times():
    """{"cold": [s, ...], "cached": [s, ...]}."""
    out = {"cold": [], "cached": []}
    with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as cached:
        _first_step(cached)  # fills the cache
        for _ in range(ROUNDS):
            for f in os.listdir(cold):
                os.remove(os.path.join(cold, f))
            out["cold"].append(_first_step(cold))
            out["cached"].append(_first_step(cached))
    return out
