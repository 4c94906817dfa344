"""What every `make bench` section shares: paths, the trust setting, and how a spread is written."""

import os
import statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LTHOST = os.path.join(ROOT, "target", "release", "lthost")
EXAMPLES = os.path.join(ROOT, "target", "release", "examples")
PLUGINS = os.path.join(ROOT, "target", "plugins")
THREADS = 1
# Plugins built here are signed with the development key; trust it (and only it).
os.environ.setdefault("LTHOST_TRUSTED_KEYS", os.path.join(ROOT, ".lthost", "trusted"))


def median(xs):
    return statistics.median(list(xs))


def spread(xs, fmt="{:.2f}"):
    """`median (min–max)` of xs."""
    xs = list(xs)
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"
