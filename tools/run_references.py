"""Runs the reference scripts (the PyTorch and Lightning oracles of tests/reference), as
`make reference` does:

    .venv/bin/python tools/run_references.py [--alone NAME]... [--fresh NAME]... SCRIPT[=OUTPUT]...

Each script runs as `python SCRIPT OUTPUT` would (`__main__`, its argv, its directory first on
sys.path), in a process of its own, forked from this one after it has imported torch and
Lightning: an `import lightning` costs ~9 s and the interpreter's teardown ~1.5 s here, paid
once instead of once per script. Two run at a time (each runs torch on one thread, so their
results do not depend on it), in the order given; a script named by `--alone` (the DDP one,
whose processes use both cores) runs with no other. A script named by `--fresh` starts a new
interpreter instead: the OpInfo one calls `inspect.stack()` thousands of times, each walking
every loaded module (207 s instead of 51 with Lightning loaded). Each script's output goes to
target/reference-logs/<script>.log. The first failure, or a script still running after 20
minutes (the longest takes ~2 here), stops every script with the processes it started and
prints the failing one's log.
"""

import atexit
import gc
import os
import runpy
import signal
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "target" / "reference-logs"
SLOTS = 2
TIMEOUT_S = 20 * 60


def run_script(script, args, log, fresh):
    """In the forked child: the script as `__main__`, its output in `log`; never returns."""
    code = 0
    try:
        # Its own process group: a failure or a timeout stops it with what it started.
        os.setpgid(0, 0)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        if fresh:
            os.execv(sys.executable, [sys.executable, str(script), *args])
        sys.argv = [str(script), *args]
        sys.path[0] = str(script.parent)
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        if isinstance(e.code, int):
            code = e.code
        elif e.code is not None:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def stop(running):
    """Kills the scripts still running, with every process each started, and reaps them."""
    for pid in running:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in running:
        os.waitpid(pid, 0)
    running.clear()


def parse(argv):
    """[(script, its arguments, alone, fresh)] in the order given."""
    named = {"--alone": set(), "--fresh": set()}
    jobs = []
    it = iter(argv)
    for a in it:
        if a in named:
            named[a].add(next(it, ""))
            continue
        script, _, out = a.partition("=")
        jobs.append((ROOT / script, [out] if out else []))
    for flag, names in named.items():
        for name in names:
            if not name or not any(s.stem == name for s, _ in jobs):
                sys.exit(f"run_references: {flag} {name} names none of the scripts")
    return [(s, args, s.stem in named["--alone"], s.stem in named["--fresh"]) for s, args in jobs]


def main(argv):
    jobs = parse(argv)
    if not jobs:
        sys.exit(__doc__)
    for script, *_ in jobs:
        if not script.is_file():
            sys.exit(f"run_references: {script} does not exist")
    LOGS.mkdir(parents=True, exist_ok=True)
    # What every script imports, imported once: the children share it (copy on write).
    import lightning  # noqa: F401
    import torch  # noqa: F401

    # Out of the collector's sight, as Python's documentation advises before forking: the
    # children's collections neither walk the preloaded objects nor copy their pages.
    gc.freeze()
    sys.stdout.flush()
    running = {}  # pid -> (script, log, start, alone)
    pending = list(jobs)
    start_all = time.time()
    failed = None
    try:
        while (pending or running) and failed is None:
            while pending:
                script, args, solo, fresh = pending[0]
                alone_running = any(alone for *_, alone in running.values())
                if len(running) >= SLOTS or (running and (solo or alone_running)):
                    break
                pending.pop(0)
                log = LOGS / f"{script.stem}.log"
                pid = os.fork()
                if pid == 0:
                    run_script(script, args, log, fresh)
                try:  # as the child does: whichever runs first
                    os.setpgid(pid, pid)
                except OSError:
                    pass
                running[pid] = (script, log, time.time(), solo)
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                late = [p for p, (_, _, t0, _) in running.items() if time.time() - t0 > TIMEOUT_S]
                if late:
                    script, log, _, _ = running[late[0]]
                    failed = (script.relative_to(ROOT), log, f"still running after {TIMEOUT_S} s")
                time.sleep(0.1)
                continue
            script, log, t0, _ = running.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            rel = script.relative_to(ROOT)
            if code != 0:
                failed = (rel, log, f"exit {code}")
                break
            print(f"reference: {rel} {time.time() - t0:.0f} s", flush=True)
    finally:
        stop(running)
    if failed is not None:
        rel, log, why = failed
        sys.stderr.write(log.read_text(errors="replace")[-20000:])
        sys.exit(f"reference: {rel} failed ({why}); its output: {log.relative_to(ROOT)}")
    print(f"reference: {len(jobs)} scripts in {time.time() - start_all:.0f} s (logs in {LOGS.relative_to(ROOT)})")


if __name__ == "__main__":
    main(sys.argv[1:])
