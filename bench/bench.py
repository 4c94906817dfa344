"""`make bench`: performance measured side by side in one run, on this machine.

Sections, one file each: parity workloads (native tch, lthost, PyTorch, Lightning:
parity.py), logging overhead (log_overhead.py), start-up (startup.py), fetch throughput and
data wait (data_path.py), languages (languages.py), precision (precision.py), DDP (ddp.py). Every figure is a median over runs with
its spread (min–max); every ratio is taken between runs made side by side, alternating.

Writes bench/results.md, whose "Summary" section is the one source of the figures the
README quotes: the README's block between `<!-- bench-summary:begin -->` and
`<!-- bench-summary:end -->` is replaced by it (tests/e2e/docs.rs checks they are equal).
Every run's figures are saved in bench/results.json; `--render` rewrites results.md (and the
README's block) from it without measuring. Fails (exit 1, results.md untouched) when the
four runners' losses disagree.

    .venv/bin/python bench/bench.py            (make bench; after make host plugins)
    BENCH_ROUNDS=3 .venv/bin/python bench/bench.py   (a quicker, rougher run)
    .venv/bin/python bench/bench.py --only precision  (that section measured anew, its commit
                                                       and date beside it; the rest kept)
    .venv/bin/python bench/bench.py --only ddp        (likewise)
    .venv/bin/python bench/bench.py --only parity     (likewise: the four runners on the four workloads)
"""

import json
import os
import platform
import subprocess
import sys
import time

import data_path
import ddp
import host_calls
import languages
import log_overhead
import parity
import precision
import startup
from common import ROOT, THREADS, median, ratio_spread, spread

BEGIN, END = "<!-- bench-summary:begin -->", "<!-- bench-summary:end -->"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; torch {torch.__version__}"


def commit():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{' + local changes' if dirty else ''}"


def summary(par, logs, start, fetch, wait, langs, transformer, host_call):
    """The headline figures (quoted verbatim by the README)."""
    lines = [
        "## Summary",
        "",
        "Ratios between runs made side by side, round by round: median [95% bootstrap confidence interval of the median] "
        "(min–max); other figures: median (min–max). Details in the sections below.",
        "",
        "| what | measured |",
        "|---|---|",
    ]
    for (workload, threads), runs in par.items():
        lt = [r["fit"] for r in runs["lthost"]]
        ratio = {x: [a / r["fit"] for a, r in zip(lt, runs[x])] for x in parity.RUNNERS if x != "lthost"}
        rss = {x: median(r["rss"] for r in runs[x]) for x in parity.RUNNERS}
        lines.append(
            f"| {workload}, {threads} thread{'s' if threads > 1 else ''}: fit time lthost / native, / PyTorch, / Lightning; "
            f"peak RSS (MiB) native, lthost, PyTorch, Lightning | {ratio_spread(ratio['native'])}; {ratio_spread(ratio['PyTorch'])}; "
            f"{ratio_spread(ratio['Lightning'])}; {rss['native']:.0f}, {rss['lthost']:.0f}, {rss['PyTorch']:.0f}, {rss['Lightning']:.0f} |")
    lines.append(f"| start-up to the first training step, parity-mlp: cold (compile) / cached component (s) | "
                 f"{spread(start['cold'], '{:.3f}')} / {spread(start['cached'], '{:.3f}')} |")
    base = {t: ts for t, l, ts in logs if l in ("no logger", "logger=False")}
    over = {l: median((a - b) * 1e6 for a, b in zip(ts, base[t])) for t, l, ts in logs}
    lines.append(
        f"| logging 3 values every step, overhead per step: CSV / TensorBoard / both / a WASM logger plugin (µs) | "
        f"+{over['csv']:.1f} / +{over['tensorboard']:.1f} / +{over['csv + tensorboard']:.1f} / +{over['jsonl-logger.wasm (plugin)']:.1f} "
        f"over {median(base['lthost']) * 1e6:.1f} µs (Lightning: CSVLogger +{over['CSVLogger']:.0f}, TensorBoardLogger "
        f"+{over['TensorBoardLogger']:.0f} over {median(base['Lightning 2.6']) * 1e6:.0f} µs) |")
    lines.append(f"| fetch throughput, 60 000 × 784 floats, batch 64, shuffled: lthost (inline) / PyTorch DataLoader | "
                 f"{ratio_spread([l['prefetch_0'] / p for l, p in fetch], '{:.1f}')}× |")
    lines.append(f"| digits, 15 epochs: share of training time waiting for data, inline / 2 batches prefetched (%) | "
                 f"{spread([w[1] for w in wait[0]], '{:.1f}')} / {spread([w[1] for w in wait[2]], '{:.1f}')} |")
    rust = langs[0]
    parts = []
    for r in langs[1:]:
        calls = median((p - t) / (languages.STEPS * languages.PROBE_CALLS) * 1e9 for p, t in zip(r["probed"], r["train"]))
        parts.append(f"{r['language']} {ratio_spread([a / b for a, b in zip(r['train'], rust['train'])])}×, {calls:.0f} ns")
    rust_call = median((p - t) / (languages.STEPS * languages.PROBE_CALLS) * 1e9 for p, t in zip(rust["probed"], rust["train"]))
    lines.append(f"| the digits MLP per language: training time vs Rust, one host call | {'; '.join(parts)} (Rust {rust_call:.0f} ns) |")
    if transformer:
        py, rs = transformer["train"]["Python"], transformer["train"]["Rust"]
        lines.append(f"| tiny-transformer as a Lightning file (Python) vs Rust: training time | {ratio_spread([a / b for a, b in zip(py, rs)])}× |")
    if host_call:
        lines.append(host_calls.summary_row(host_call))
    return lines + [""]


def quote_in_readme(lines):
    """Replaces the README's bench-summary block with `lines` (written whole, then renamed)."""
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        text = f.read()
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        sys.exit(f"README.md has no {BEGIN} … {END} block to quote the summary in")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + BEGIN + "\n" + "\n".join(lines).rstrip("\n") + "\n" + END + tail)
    os.replace(tmp, path)


RAW = os.path.join(ROOT, "bench", "results.json")


def measure():
    """Every section's runs, as saved in results.json."""
    started = time.time()
    print("parity workloads…", file=sys.stderr)
    par = parity.parity_runs()
    print("logging overhead…", file=sys.stderr)
    logs = log_overhead.logging_overhead()
    print("start-up, fetch, data wait…", file=sys.stderr)
    start = startup.startup_times()
    fetch = data_path.fetch_throughput()
    wait = data_path.data_wait_share()
    print("languages…", file=sys.stderr)
    langs = languages.language_costs()
    transformer = languages.transformer_costs()
    print("host calls…", file=sys.stderr)
    calls = host_calls.call_costs()
    print("precision…", file=sys.stderr)
    prec = {"runs": precision.precision_runs(), "at": f"at {commit()} on {time.strftime('%Y-%m-%d')}"}
    print("ddp…", file=sys.stderr)
    dist = {"runs": ddp.ddp_runs(), "at": f"at {commit()} on {time.strftime('%Y-%m-%d')}"}
    return {"precision": prec, "ddp": dist, "machine": machine(), "commit": commit(), "rounds": parity.ROUNDS, "seconds": time.time() - started,
            "date": time.strftime("%Y-%m-%d"), "parity": {f"{w}/{t}": runs for (w, t), runs in par.items()},
            "logs": logs, "start": start, "fetch": fetch, "wait": wait, "langs": langs, "transformer": transformer, "calls": calls}


def main():
    if "--render" in sys.argv[1:]:
        with open(RAW) as f:
            raw = json.load(f)
    elif sys.argv[1:3] in (["--only", "precision"], ["--only", "ddp"]):
        with open(RAW) as f:
            raw = json.load(f)
        section = sys.argv[2]
        runs = precision.precision_runs() if section == "precision" else ddp.ddp_runs()
        raw[section] = {"runs": runs, "at": f"at {commit()} on {time.strftime('%Y-%m-%d')}"}
        with open(RAW + ".tmp", "w") as f:
            json.dump(raw, f)
        os.replace(RAW + ".tmp", RAW)
    elif sys.argv[1:3] == ["--only", "parity"]:
        with open(RAW) as f:
            raw = json.load(f)
        raw["parity"] = {f"{w}/{t}": runs for (w, t), runs in parity.parity_runs().items()}
        raw["parity_at"] = f"at {commit()} on {time.strftime('%Y-%m-%d')}"
        with open(RAW + ".tmp", "w") as f:
            json.dump(raw, f)
        os.replace(RAW + ".tmp", RAW)
    else:
        raw = measure()
        raw.pop("parity_at", None)
        with open(RAW + ".tmp", "w") as f:
            json.dump(raw, f)
        os.replace(RAW + ".tmp", RAW)
    par = {(k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1])): runs for k, runs in raw["parity"].items()}
    logs, start, fetch, langs = raw["logs"], raw["start"], raw["fetch"], raw["langs"]
    wait = {int(k): v for k, v in raw["wait"].items()}
    calls = raw.get("calls")
    transformer = raw.get("transformer")
    head = summary(par, logs, start, fetch, wait, langs, transformer, calls)
    lines = [
        "# lthost benchmarks",
        "",
        f"Machine: {raw['machine']}; {THREADS} libtorch thread unless a table says otherwise.",
        f"Command: `make bench` (`.venv/bin/python bench/bench.py`), {raw['rounds']} rounds; lthost at {raw['commit']}; "
        f"measured in {raw['seconds']:.0f} s on {raw['date']}"
        + (f"; the parity workloads (Summary's first rows, and their section) measured again {raw['parity_at']} "
           "(`bench/bench.py --only parity`)" if raw.get("parity_at") else "")
        + ". Every run: bench/results.json (`bench/bench.py --render` rewrites this file from it).",
        "",
    ] + head + parity.table(par) + log_overhead.table(logs) + [
        "## Start-up: process start to the first training step",
        "",
        "parity-mlp (a 215 KB Rust component); `cold` compiles the component (empty cache), `cached` loads it from the "
        f"component cache; {len(start['cold'])} runs each, alternating, median (min–max). Most of what remains is loading "
        "libtorch_cpu (the CUDA library is preloaded only when a run may use CUDA).",
        "",
        "| component cache | seconds |",
        "|---|---:|",
        f"| cold | {spread(start['cold'], '{:.3f}')} |",
        f"| cached | {spread(start['cached'], '{:.3f}')} |",
        "",
    ] + data_path.fetch_table(fetch) + data_path.wait_table(wait) + languages.table(langs) + languages.transformer_table(transformer) + (host_calls.table(calls) if calls else []) + precision.table(
        raw.get("precision", {}).get("runs"), raw.get("precision", {}).get("at")) + ddp.table(
        raw.get("ddp", {}).get("runs"), raw.get("ddp", {}).get("at"))
    text = "\n".join(lines)
    print(text)
    failed = (parity.check(par) + precision.check(raw.get("precision", {}).get("runs") or {})
              + ddp.check(raw.get("ddp", {}).get("runs") or {}))
    if failed:
        sys.exit("the runners' losses disagree (results.md left as it was):\n  " + "\n  ".join(failed))
    results = os.path.join(ROOT, "bench", "results.md")
    with open(results + ".tmp", "w") as f:
        f.write(text)
    os.replace(results + ".tmp", results)
    quote_in_readme(head[2:])


if __name__ == "__main__":
    main()
