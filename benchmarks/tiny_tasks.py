"""Tiny-task loop (RayFed's "many tiny tasks" benchmark) and a 3-party chain.

Loop, 2 parties: an actor at alice and one at bob each return None, an
aggregator at alice takes both, and every party ``fed.get``s the aggregate.
Chain, 3 parties: alice -> bob -> carol, each hop a tiny task taking the
previous result; ``fed.get`` of the last one; reported per hop.

Usage: python benchmarks/tiny_tasks.py [--iters N] [--runs R] [--no-chain] [--profile FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fed  # noqa: E402
from benchmarks import _launch  # noqa: E402


@fed.remote
class Tiny:
    def run(self):
        return None


@fed.remote
class Aggregator:
    def aggr(self, a, b):
        return None


@fed.remote
def hop(x):
    return x


def loop_body(party, addresses, iters, warmup, profile=None):
    _launch.start_ray()
    fed.init(addresses=addresses, party=party)
    a, b = Tiny.party("alice").remote(), Tiny.party("bob").remote()
    agg = Aggregator.party("alice").remote()

    def one():
        fed.get(agg.aggr.remote(a.run.remote(), b.run.remote()))

    for _ in range(warmup):
        one()
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    for _ in range(iters):
        one()
    elapsed = time.perf_counter() - t0
    if prof is not None:
        prof.disable()
        prof.dump_stats(f"{profile}.{party}")
    fed.shutdown()
    return elapsed / iters * 1000


def chain_body(party, addresses, iters, warmup):
    _launch.start_ray()
    fed.init(addresses=addresses, party=party)

    def one():
        x = hop.party("alice").remote(0)
        x = hop.party("bob").remote(x)
        x = hop.party("carol").remote(x)
        fed.get(x)

    for _ in range(warmup):
        one()
    t0 = time.perf_counter()
    for _ in range(iters):
        one()
    elapsed = time.perf_counter() - t0
    fed.shutdown()
    # 3 hops per iteration: alice->bob, bob->carol, carol->(alice, bob) for fed.get
    return elapsed / iters / 3 * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-chain", action="store_true")
    ap.add_argument("--profile", help="cProfile the measured loop into FILE.<party>")
    opts = ap.parse_args()
    loop = {"alice": [], "bob": []}
    chain = []
    for _ in range(opts.runs):
        res = _launch.run(loop_body, ("alice", "bob"),
                          args=dict(iters=opts.iters, warmup=50, profile=opts.profile))
        for p in loop:
            loop[p].append(res[p]["value"])
        print(f"loop run: alice {res['alice']['value']:.2f} ms/iter, bob {res['bob']['value']:.2f} ms/iter", flush=True)
        if not opts.no_chain:
            res = _launch.run(chain_body, ("alice", "bob", "carol"), args=dict(iters=opts.iters // 2, warmup=30))
            chain.append(max(r["value"] for r in res.values()))
            print(f"chain run: {chain[-1]:.2f} ms/hop", flush=True)
    for p, v in loop.items():
        print(_launch.summary(f"tiny-task loop at {p}", v, "ms/iter"))
    if chain:
        print(_launch.summary("3-party chain alice->bob->carol", chain, "ms/hop"))


if __name__ == "__main__":
    main()
