"""Ray's own latency for a tiny call after its Ray was idle a while (no silofed).

In the 3-party chain each party's Ray idles for two hops out of three, in the
tiny-task loop for about half of every iteration. This measures, in one
process with one Ray, what a tiny task and a tiny actor call cost when
submitted back to back and after idle gaps: the median time from submission
to the function starting, and from its start to the value in the driver.
The figures are Ray's and this machine's, the part of a hop silofed cannot
change; compare them with the Ray steps ``chain_floor.py`` and
``critical_path.py`` print.

Usage: python benchmarks/tools/ray_idle_cost.py [--calls N] [--gaps-ms 0,1,5,20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import ray  # noqa: E402

from benchmarks import _launch  # noqa: E402

now = time.monotonic_ns


@ray.remote
def tiny_task() -> int:
    return now()


@ray.remote
class TinyActor:
    def run(self) -> int:
        return now()


def measure(call, gap_s: float, calls: int) -> tuple[float, float]:
    """Median µs (submitted -> starts, starts -> value in the driver) over ``calls`` calls, ``gap_s`` apart."""
    starts, backs = [], []
    for _ in range(calls):
        if gap_s:
            time.sleep(gap_s)
        submitted = now()
        started = ray.get(call())
        starts.append(started - submitted)
        backs.append(now() - started)
    return statistics.median(starts) / 1e3, statistics.median(backs) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--gaps-ms", default="0,1,5,20", help="idle gaps before each call, ms, comma-separated")
    opts = ap.parse_args()
    gaps = [float(g) / 1000 for g in opts.gaps_ms.split(",")]
    _launch.start_ray()
    actor = TinyActor.remote()
    calls = {"task": tiny_task.remote, "actor call": actor.run.remote}
    for call in calls.values():
        measure(call, 0, 50)  # warm-up: workers started, code loaded
    print(f"{'call':12s} {'idle gap':>9s} {'submitted -> starts':>20s} {'starts -> value':>16s}   (medians, µs)")
    for name, call in calls.items():
        for gap in gaps:
            start, back = measure(call, gap, opts.calls)
            print(f"{name:12s} {gap * 1000:7.0f}ms {start:20.0f} {back:16.0f}", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
