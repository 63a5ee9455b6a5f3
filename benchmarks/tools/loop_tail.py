"""What makes the tiny-task loop's mean longer than its median: single iterations at alice.

Runs the loop of ``tiny_tasks.py`` once and keeps the duration of every
iteration at alice. Prints:

* mean, p50, p90, p99 and max, and how much of the mean is the slower half's
  excess over the median;
* the share of the run spent in iterations of each duration band;
* the mean iteration by its start's phase within each second since the run
  began (20 bins of 50 ms): a bin well above the others is work that comes
  once a second (Ray's task events are flushed to its GCS once a second);
* the full (generation 2) garbage collections each driver ran during the
  run, and how long each took.

``--no-task-events`` creates the loop's actors with Ray's
``enable_task_events=False``, to compare; ``--actor-proxies`` runs every
party's proxies as Ray actors (as ``send_resource_label`` and
``recv_resource_label`` do) instead of in its driver.

Usage: python benchmarks/tools/loop_tail.py [--iters N] [--no-task-events] [--actor-proxies]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import fed  # noqa: E402
from benchmarks import _launch  # noqa: E402
from benchmarks.tiny_tasks import start_loop  # noqa: E402

BANDS_MS = (2.0, 2.5, 3.0, 4.0, 6.0, 10.0)
PHASE_BINS = 20


def body(party, addresses, iters, warmup, ray_options, actor_proxies):
    one = start_loop(party, addresses, ray_options, actor_proxies)
    for _ in range(warmup):
        one()
    full_ms: list[float] = []
    began = [0.0]

    def timed(phase, info):
        if info["generation"] == 2:
            if phase == "start":
                began[0] = time.perf_counter()
            else:
                full_ms.append((time.perf_counter() - began[0]) * 1000)

    gc.callbacks.append(timed)
    starts = []
    for _ in range(iters):
        starts.append(time.monotonic_ns())
        one()
    starts.append(time.monotonic_ns())
    gc.callbacks.remove(timed)
    fed.shutdown()
    return starts, full_ms


def _report(starts: list[int]) -> None:
    took = [(end - start) / 1e6 for start, end in zip(starts, starts[1:])]
    ordered = sorted(took)
    n = len(took)
    mean, median = statistics.mean(took), ordered[n // 2]
    print(f"single iterations at alice, ms: mean {mean:.3f}  p50 {median:.3f}  p90 {ordered[n * 9 // 10]:.3f}  "
          f"p99 {ordered[n * 99 // 100]:.3f}  max {ordered[-1]:.2f}")
    print(f"  the slower half's excess over the median adds {sum(t - median for t in took if t > median) / n:.3f} "
          f"ms to the mean")
    total = sum(took)
    edges = (0.0, *BANDS_MS, float("inf"))
    for low, high in zip(edges, edges[1:]):
        band = [t for t in took if low <= t < high]
        print(f"  {low:5.1f} - {high:5.1f} ms: {len(band):6d} iterations, {sum(band) / total * 100:5.1f}% of the run")
    bins: list[list[float]] = [[] for _ in range(PHASE_BINS)]
    for start, t in zip(starts, took):
        phase = ((start - starts[0]) / 1e9) % 1.0
        bins[int(phase * PHASE_BINS)].append(t)
    width = 1000 // PHASE_BINS
    print("mean iteration by the phase of its start within each second (ms):")
    print("  " + "  ".join(f"{i * width:3d}-{(i + 1) * width:<4d} {statistics.mean(b):.2f}"
                           for i, b in enumerate(bins) if b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=5000)
    ap.add_argument("--no-task-events", action="store_true",
                    help="create the actors with Ray's enable_task_events=False")
    ap.add_argument("--actor-proxies", action="store_true",
                    help="run both parties' proxies as Ray actors (send/recv_resource_label) instead of in the driver")
    opts = ap.parse_args()
    ray_options = {"enable_task_events": False} if opts.no_task_events else {}
    res = _launch.run(body, ("alice", "bob"), args=dict(iters=opts.iters, warmup=100, ray_options=ray_options,
                                                        actor_proxies=opts.actor_proxies))
    _report(res["alice"]["value"][0])
    print("full garbage collections during the run (ms each): " +
          ", ".join(f"{p} {[round(ms, 1) for ms in r['value'][1]]}" for p, r in res.items()))


if __name__ == "__main__":
    # The parties import the bodies by module name, so run them from the module, not __main__.
    from benchmarks.tools import loop_tail

    loop_tail.main()
