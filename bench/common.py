"""What every `make bench` section shares: paths, the trust setting, and how a spread is written."""

import os
import random
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


def median_ci(xs, level=0.95, resamples=4000):
    """A bootstrap confidence interval of the median of xs (percentiles of the medians of
    `resamples` resamples with replacement; a fixed seed, so a table re-renders the same)."""
    xs = list(xs)
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    tail = (1 - level) / 2
    return meds[int(tail * resamples)], meds[min(resamples - 1, int((1 - tail) * resamples))]


def ratio_spread(xs, fmt="{:.2f}"):
    """`median [95% CI of the median] (min–max)` of the ratios xs."""
    xs = list(xs)
    lo, hi = median_ci(xs)
    f = fmt.format
    return f"{f(statistics.median(xs))} [{f(lo)}–{f(hi)}] ({f(min(xs))}–{f(max(xs))})"
