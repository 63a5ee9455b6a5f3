"""A small launcher shared by the benchmark scripts.

Mirrors ``tests/parties/harness.py`` without pytest: each party is a fresh
``python`` process (its own session, its own Ray) running a module-level
function ``body(party, addresses, **args)``; its return value comes back as a
pickle. Everything is killed at the deadline. Benchmarks import this module;
run a benchmark with ``python benchmarks/<name>.py``.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import psutil

from fed._cli.launch import free_local_ports

REPO = Path(__file__).resolve().parents[1]


def free_addresses(parties: Sequence[str]) -> dict[str, str]:
    """``{party: "127.0.0.1:port"}`` on free ports."""
    ports = free_local_ports(len(parties))
    return {p: f"127.0.0.1:{port}" for p, port in zip(parties, ports)}


class PartyFailed(RuntimeError):
    """A party process timed out or exited non-zero."""


def run(
    body: Callable,
    parties: Sequence[str] = ("alice", "bob"),
    *,
    args: Optional[dict] = None,
    timeout: float = 300,
) -> dict[str, Any]:
    """Run ``body(party, addresses, **args)`` as one process per party.

    Returns:
        ``{party: {"value": what body returned, "wall_s": process lifetime}}``.

    Raises:
        PartyFailed: a party timed out or failed (the message holds every log).
    """
    workdir = Path(tempfile.mkdtemp(prefix="silofed-bench-"))
    module = body.__module__
    if module == "__main__":  # a script run directly: import it by its file name
        module = "benchmarks." + Path(sys.modules["__main__"].__file__).stem
    spec = {"module": module, "func": body.__qualname__,
            "addresses": free_addresses(parties), "args": args or {}}
    (workdir / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0")
    procs, started, ended = {}, {}, {}
    for p in parties:
        with open(workdir / f"{p}.log", "wb") as out:
            started[p] = time.monotonic()
            procs[p] = subprocess.Popen(
                [sys.executable, "-m", "benchmarks._launch", str(workdir / "spec.json"), p, str(workdir / f"{p}.out")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**env, "FED_PARTY": p}, cwd=str(REPO), start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while len(ended) < len(procs) and time.monotonic() < deadline:
            for p, proc in procs.items():
                if p not in ended and proc.poll() is not None:
                    ended[p] = time.monotonic()
            time.sleep(0.02)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                _kill_session(proc.pid)
    logs = "\n".join(f"===== {p} (exit {procs[p].returncode}) =====\n"
                     f"{(workdir / f'{p}.log').read_text(errors='replace')[-8000:]}" for p in parties)
    if len(ended) < len(procs) or any(proc.returncode for proc in procs.values()):
        raise PartyFailed(f"parties failed or timed out after {timeout} s (logs in {workdir})\n{logs}")
    return {p: {"value": pickle.loads((workdir / f"{p}.out").read_bytes()), "wall_s": ended[p] - started[p]}
            for p in parties}


def _kill_session(pid: int) -> None:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        kids = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    for k in kids:
        try:
            k.kill()
        except psutil.Error:
            pass


def start_ray(object_store_bytes: int = 300 << 20, resources: Optional[dict] = None) -> None:
    """Start this party's own Ray (2 CPUs, no dashboard, custom ``resources`` if given), as the tests do."""
    import ray

    ray.init(num_cpus=2, object_store_memory=object_store_bytes, include_dashboard=False,
             logging_level="warning", log_to_driver=True, resources=resources)


def seconds_per_call(step: Callable[[], Any], iters: int, warmup: int,
                     after_warmup: Callable[[], Any] = lambda: None) -> float:
    """Mean seconds per ``step()`` over ``iters`` calls, after ``warmup`` untimed calls
    (``after_warmup()`` runs between, e.g. to drop what the warm-up recorded)."""
    for _ in range(warmup):
        step()
    after_warmup()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - t0) / iters


def summary(name: str, values: Sequence[float], unit: str) -> str:
    """One line: ``name: median (min..max, n runs) unit``."""
    return (f"{name:<44} median {statistics.median(values):9.2f}  min {min(values):9.2f}  "
            f"max {max(values):9.2f}  {unit}  (n={len(values)})")


def print_steps(steps: Sequence[tuple[str, Sequence[int]]], skip: int = 0) -> None:
    """Print each step's median time (µs) since the first step and since the one before.

    ``steps`` is ``[(name, [timestamp in ns per iteration])]`` in the order of
    the critical path; the first ``skip`` iterations (warm-up) are left out.
    """
    begin = steps[0][1]
    rows = range(skip, min(len(times) for _, times in steps))
    print(f"{'step':40s} {'since begin':>12s} {'since previous':>15s}   (medians, µs)")
    previous = None
    for name, times in steps:
        since_begin = statistics.median(times[i] - begin[i] for i in rows) / 1e3
        since_prev = "" if previous is None else f"{statistics.median(times[i] - previous[i] for i in rows) / 1e3:15.0f}"
        print(f"{name:40s} {since_begin:12.0f} {since_prev}")
        previous = times
    cycle = [begin[i + 1] - begin[i] for i in rows[:-1]]
    print(f"iteration: median {statistics.median(cycle) / 1e3:.0f} µs, mean {statistics.mean(cycle) / 1e3:.0f} µs")


def _main() -> None:
    import importlib

    spec_path, party, out_path = sys.argv[1:4]
    spec = json.loads(Path(spec_path).read_text())
    target: Any = importlib.import_module(spec["module"])
    for part in spec["func"].split("."):
        target = getattr(target, part)
    value = target(party, spec["addresses"], **spec["args"])
    Path(out_path).write_bytes(pickle.dumps(value))
    sys.stdout.flush()


if __name__ == "__main__":
    _main()
