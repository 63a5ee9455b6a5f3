"""Party launching and figures shared by the benchmark scripts.

A thin adapter over the one launcher, ``fed._cli.launch`` (also used by ``fed
run`` and the party tests): each party is a fresh ``python`` process (its own
session, its own Ray) running a module-level function ``body(party, addresses,
**args)``; its return value comes back as a pickle. Everything is killed at the
deadline. Benchmarks import this module; run a benchmark with
``python benchmarks/<name>.py`` (or a script in a subfolder of ``benchmarks/``).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from fed._cli.launch import free_local_ports, run_bodies

REPO = Path(__file__).resolve().parents[1]
# Exit detection every 20 ms: "wall_s" is a figure some benchmarks print.
_POLL_S = 0.02


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
        KeyboardInterrupt: interrupted (every party was stopped).
    """
    workdir = Path(tempfile.mkdtemp(prefix="silofed-bench-"))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    res = run_bodies(body, parties, free_addresses(parties), workdir=workdir, args=args, timeout=timeout,
                     env=env, root=REPO, poll_s=_POLL_S)
    if res.interrupted:
        raise KeyboardInterrupt
    if res.timed_out or any(code != 0 for code in res.codes.values()):
        raise PartyFailed(f"parties failed or timed out after {timeout} s (logs in {workdir})\n"
                          f"{res.report(tail_chars=8000)}")
    return {p: {"value": res.values[p], "wall_s": res.elapsed_s[p]} for p in parties}


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
