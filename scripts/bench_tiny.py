"""Time a loop of tiny cross-party calls (alice <-> bob ping-pong) on this machine.

Usage (from the repository root): python -m scripts.bench_tiny [N] [REPEATS]
Prints the best and median wall time per call over REPEATS loops of N calls.
"""

from __future__ import annotations

import statistics
import sys
import time

import fed
from tests.parties.common import join, leave
from tests.parties.harness import run_parties


@fed.remote
def bump(x):
    return x + 1


def body(party, addresses, n, repeats):
    join(party, addresses)
    x = bump.party("alice").remote(0)
    fed.get(x)  # warm up both directions
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        x = bump.party("alice").remote(0)
        for i in range(n):
            x = bump.party("bob" if i % 2 == 0 else "alice").remote(x)
        value = fed.get(x)
        times.append(time.perf_counter() - start)
        assert value == n + 1
    leave()
    return times


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    import importlib

    module = importlib.import_module("scripts.bench_tiny")  # the body must be importable by the parties
    run = run_parties(module.body, ("alice", "bob"), timeout=600, args={"n": n, "repeats": repeats})
    times = run.value("alice")
    print(f"{n} tiny cross-party calls: best {min(times):.3f} s, median {statistics.median(times):.3f} s "
          f"({min(times) / n * 1e3:.2f} ms/call best); all {[round(t, 3) for t in times]}")


if __name__ == "__main__":
    main()
