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


def chain_floor_run(iters: int, link: str) -> float:
    """ms per hop of the chain without silofed."""
    res = _launch.run(chain_floor.body, ("alice", "bob", "carol"), args=dict(iters=iters, warmup=50, link=link))
    return max(r["value"][0] for r in res.values())


def silofed_chain_run(iters: int) -> float:
    """ms per hop of silofed's chain."""
    res = _launch.run(tiny_tasks.chain_body, ("alice", "bob", "carol"), args=dict(iters=iters, warmup=50))
    return max(r["value"] for r in res.values())


def compare_chains(pairs: int, iters: int, link: str) -> None:
    """Print each pair of chain runs and the median difference per hop."""
    diffs, floors, silofeds = [], [], []
    for i in range(pairs):
        floor, silofed = chain_floor_run(iters, link), silofed_chain_run(iters)
        floors.append(floor)
        silofeds.append(silofed)
        diffs.append(silofed - floor)
        print(f"pair {i + 1}: floor {floor:.2f}  silofed {silofed:.2f}  difference {diffs[-1]:+.2f} ms/hop", flush=True)
    print(f"chain: floor {statistics.median(floors):.2f}, silofed {statistics.median(silofeds):.2f} ms/hop; "
          f"silofed - floor per pair: median {statistics.median(diffs):+.2f} (min {min(diffs):+.2f}, "
          f"max {max(diffs):+.2f}), n={len(diffs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=800)
    ap.add_argument("--link", choices=("grpc", "socket"), default="grpc")
    ap.add_argument("--chain", action="store_true", help="compare the 3-party chain instead of the loop")
    opts = ap.parse_args()
    if opts.chain:
        compare_chains(opts.pairs, opts.iters // 2, opts.link)
        return
    pairs = []
    for i in range(opts.pairs):
        floor, silofed = floor_run(opts.iters, opts.link), silofed_run(opts.iters)
        pairs.append((floor, silofed))
        print(f"pair {i + 1}: floor {floor[0]:.2f} (median {floor[1]:.2f})  silofed {silofed[0]:.2f} "
              f"(median {silofed[1]:.2f})  difference {silofed[0] - floor[0]:+.2f} ms/iter", flush=True)
    for j, what in enumerate(("mean", "median single iteration")):
        diffs = [s[j] - f[j] for f, s in pairs]
        print(f"{what}: floor {statistics.median(f[j] for f, _ in pairs):.2f}, silofed "
              f"{statistics.median(s[j] for _, s in pairs):.2f} ms/iter; silofed - floor per pair: median "
              f"{statistics.median(diffs):+.2f} (min {min(diffs):+.2f}, max {max(diffs):+.2f}), n={len(pairs)}")


if __name__ == "__main__":
    main()
