"""CPU and context switches per loop iteration, thread by thread: silofed against the bare-gRPC floor.

Runs the tiny-task loop (``tiny_tasks.py``) and the same loop over bare gRPC
(``two_rays_floor.py --link grpc``) in turns. Each party's driver reads every
one of its threads' CPU time (user + system, ``/proc/self/task/<tid>/stat``)
and context switches (voluntary and involuntary, ``.../status``) after the
warm-up and after the timed iterations, and reports both per iteration.
Where silofed's extra CPU goes shows directly: per thread, and far steadier
than wall time, which the machine's drift blurs.

Threads carry Python's name where Python started them (silofed's proxy loop
``silofed-proxies`` and its object getter ``silofed-get``; the floor's link
loop ``run_forever``; gRPC's completion-queue poller ``_poll_wrapper``), else
the operating system's (Ray's ``worker.io`` and the like; threads sharing a
name are summed). The kernel counts CPU in clock ticks (10 ms here), so the
figures resolve 10 ms / ``--iters``.

Usage: python benchmarks/tools/thread_cpu.py [--pairs P] [--iters N]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import fed  # noqa: E402
from benchmarks import _launch, tiny_tasks, two_rays_floor  # noqa: E402

SYSTEMS = ("floor", "silofed")
_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
_SHOWN_SWITCHES = 0.5  # threads under 1 µs of CPU and this many switches per iteration are left out
_STARTED_BY_PYTHON = re.compile(r"^Thread-\d+ \((\w+)\)$")  # threading's default name for Thread(target=f)


def body(party, addresses, iters, warmup, system):
    if system == "silofed":
        one, close = tiny_tasks.start_loop(party, addresses), fed.shutdown
    else:
        one, close = two_rays_floor.start_loop(party, addresses, link="grpc")
    for _ in range(warmup):
        one()
    before = _thread_counters()
    t0 = time.perf_counter()
    for _ in range(iters):
        one()
    elapsed = time.perf_counter() - t0
    after = _thread_counters()
    close()
    return elapsed / iters * 1000, _per_iteration(before, after, iters)


def _thread_counters() -> dict[int, tuple[str, float, int]]:
    """``{tid: (name, CPU seconds, context switches)}`` of every thread of this process."""
    python_names = {t.native_id: t.name for t in threading.enumerate()}
    counters = {}
    for entry in os.scandir("/proc/self/task"):
        tid = int(entry.name)
        try:
            with open(f"{entry.path}/stat") as f:
                stat = f.read()
            with open(f"{entry.path}/status") as f:
                switches = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        name = python_names.get(tid) or stat[stat.index("(") + 1:stat.rindex(")")]
        match = _STARTED_BY_PYTHON.match(name)
        fields = stat[stat.rindex(")") + 2:].split()
        counters[tid] = (match.group(1) if match else name, (int(fields[11]) + int(fields[12])) * _TICK_S, switches)
    return counters


def _per_iteration(before: dict, after: dict, iters: int) -> dict[str, tuple[float, float]]:
    """``{thread name: (µs of CPU, context switches)}`` per iteration, threads of one name summed."""
    cpu: collections.Counter = collections.Counter()
    switches: collections.Counter = collections.Counter()
    for tid, (name, seconds, count) in after.items():
        _, seconds0, count0 = before.get(tid, (name, 0.0, 0))
        cpu[name] += seconds - seconds0
        switches[name] += count - count0
    return {name: (cpu[name] / iters * 1e6, switches[name] / iters) for name in cpu if cpu[name] or switches[name]}


def _print_table(party: str, runs: dict[str, list[dict]]) -> None:
    medians = {system: {name: tuple(statistics.median(r.get(name, (0.0, 0.0))[i] for r in runs[system])
                                    for i in (0, 1))
                        for name in set().union(*runs[system])}
               for system in SYSTEMS}
    names = sorted(set(medians["floor"]) | set(medians["silofed"]),
                   key=lambda n: -max(medians[s].get(n, (0.0,))[0] for s in SYSTEMS))
    shown = [n for n in names if any(medians[s].get(n, (0.0, 0.0)) >= (1.0, 0.0) or
                                     medians[s].get(n, (0.0, 0.0))[1] >= _SHOWN_SWITCHES for s in SYSTEMS)]
    print(f"{party}'s driver, per iteration (medians)      floor: µs CPU  switches   silofed: µs CPU  switches")
    for name in shown:
        cells = "".join(f"{medians[s].get(name, (0.0, 0.0))[0]:18.0f} {medians[s].get(name, (0.0, 0.0))[1]:9.2f}"
                        for s in SYSTEMS)
        print(f"  {name:<40}{cells}")
    if len(shown) < len(names):
        print(f"  ({len(names) - len(shown)} more threads, each under 1 µs of CPU and {_SHOWN_SWITCHES} switches)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3000)
    opts = ap.parse_args()
    per_thread: dict = {party: {s: [] for s in SYSTEMS} for party in ("alice", "bob")}
    totals: dict = {s: [] for s in SYSTEMS}
    for pair in range(1, opts.pairs + 1):
        for system in SYSTEMS:
            res = _launch.run(body, ("alice", "bob"), args=dict(iters=opts.iters, warmup=100, system=system))
            drivers_ms = 0.0
            for party, r in res.items():
                per_thread[party][system].append(r["value"][1])
                drivers_ms += sum(cpu for cpu, _ in r["value"][1].values()) / 1000
            totals[system].append(drivers_ms)
            print(f"pair {pair} {system:>7}: {res['alice']['value'][0]:.2f} ms/iter, both drivers' CPU "
                  f"{drivers_ms:.3f} ms/iter", flush=True)
    for party in ("alice", "bob"):
        _print_table(party, per_thread[party])
    for system in SYSTEMS:
        print(_launch.summary(f"both drivers' CPU per iteration, {system}", totals[system], "ms"))
    print(_launch.summary("  silofed - floor", [s - f for f, s in zip(totals["floor"], totals["silofed"])], "ms"))


if __name__ == "__main__":
    # The parties import the bodies by module name, so run them from the module, not __main__.
    from benchmarks.tools import thread_cpu

    thread_cpu.main()
