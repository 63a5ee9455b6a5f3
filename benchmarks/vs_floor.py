"""silofed's tiny-task loop against the same loop without silofed, run in turns.

This machine's speed drifts by more than silofed's own cost between runs a few
minutes apart, so comparing a silofed figure with a floor figure taken at
another time says little. Here each pair is one run of the floor
(``two_rays_floor.py``: the same actors and calls on two Rays, the values
sent by the drivers over bare gRPC or a bare socket) and, right after, one run
of silofed's loop (``tiny_tasks.py``); the difference within each pair is
silofed's cost over the transport alone in those minutes. Prints every pair,
then the medians and the median of the per-pair differences, for the mean
time per iteration and for the median single iteration.

With ``--chain``, the same for the 3-party chain (``chain_floor.py`` against
the chain of ``tiny_tasks.py``), in ms per hop.

Usage: python benchmarks/vs_floor.py [--pairs N] [--iters N] [--link grpc|socket] [--chain]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _launch, chain_floor, tiny_tasks, two_rays_floor  # noqa: E402


def floor_run(iters: int, link: str) -> tuple[float, float]:
    """(mean, median) ms per iteration of the loop without silofed."""
    res = _launch.run(two_rays_floor.body, ("alice", "bob"), args=dict(iters=iters, warmup=100, link=link))
    mean, bob_times = res["alice"]["value"][0], res["bob"]["value"][1]
    cycles = [(b[0] - a[0]) / 1e6 for a, b in zip(bob_times, bob_times[1:])]
    return mean, statistics.median(cycles) if cycles else mean


def silofed_run(iters: int) -> tuple[float, float]:
    """(mean, median) ms per iteration of silofed's loop."""
    res = _launch.run(tiny_tasks.loop_body, ("alice", "bob"), args=dict(iters=iters, warmup=50))
    mean, _, median, _ = res["alice"]["value"]
    return mean, median


def chain_floor_run(iters: int, link: str) -> tuple[float]:
    """(ms per hop,) of the chain without silofed."""
    res = _launch.run(chain_floor.body, ("alice", "bob", "carol"), args=dict(iters=iters, warmup=50, link=link))
    return (max(r["value"][0] for r in res.values()),)


def silofed_chain_run(iters: int) -> tuple[float]:
    """(ms per hop,) of silofed's chain."""
    res = _launch.run(tiny_tasks.chain_body, ("alice", "bob", "carol"), args=dict(iters=iters, warmup=50))
    return (max(r["value"] for r in res.values()),)


def compare(pairs: int, floor: Callable[[], tuple], silofed: Callable[[], tuple], figures: Sequence[str],
            unit: str) -> None:
    """Run ``pairs`` pairs (floor, then silofed); print each pair, then per figure the medians
    and the median of the per-pair differences. Each run returns one value per name in ``figures``."""
    runs = []
    for i in range(pairs):
        f, s = floor(), silofed()
        runs.append((f, s))
        print(f"pair {i + 1}: floor {' / '.join(f'{v:.2f}' for v in f)}  silofed {' / '.join(f'{v:.2f}' for v in s)}"
              f"  difference {s[0] - f[0]:+.2f} {unit} ({' / '.join(figures)})", flush=True)
    for j, what in enumerate(figures):
        diffs = [s[j] - f[j] for f, s in runs]
        print(f"{what}: floor {statistics.median(f[j] for f, _ in runs):.2f}, silofed "
              f"{statistics.median(s[j] for _, s in runs):.2f} {unit}; silofed - floor per pair: median "
              f"{statistics.median(diffs):+.2f} (min {min(diffs):+.2f}, max {max(diffs):+.2f}), n={len(runs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=800)
    ap.add_argument("--link", choices=("grpc", "socket"), default="grpc")
    ap.add_argument("--chain", action="store_true", help="compare the 3-party chain instead of the loop")
    opts = ap.parse_args()
    if opts.chain:
        iters = opts.iters // 2
        compare(opts.pairs, lambda: chain_floor_run(iters, opts.link), lambda: silofed_chain_run(iters),
                ("chain, mean",), "ms/hop")
    else:
        compare(opts.pairs, lambda: floor_run(opts.iters, opts.link), lambda: silofed_run(opts.iters),
                ("mean", "median single iteration"), "ms/iter")


if __name__ == "__main__":
    main()
