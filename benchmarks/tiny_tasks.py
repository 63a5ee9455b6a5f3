"""Tiny-task loop (RayFed's "many tiny tasks" benchmark) and a 3-party chain.

Loop, 2 parties: an actor at alice and one at bob each return None, an
aggregator at alice takes both, and every party ``fed.get``s the aggregate.
Chain, 3 parties: alice -> bob -> carol, each hop a tiny task taking the
previous result; ``fed.get`` of the last one; reported per hop.
The loop also reports the CPU time all processes on the machine used per
iteration (/proc/stat): steadier than wall time on a shared machine; and the
median and 90th percentile of single iterations at alice, which show how much
of the mean is a tail (a full garbage collection, a busy neighbour). The
figure for the target is the mean per run (total time / iterations).

Usage: python benchmarks/tiny_tasks.py [--iters N] [--runs R] [--no-chain] [--profile FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

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


def start_loop(party: str, addresses: dict[str, str], ray_options: Optional[dict] = None,
               actor_proxies: bool = False) -> Callable[[], None]:
    """Start this party's Ray and silofed and the loop's actors; returns one iteration of the loop.

    ``ray_options`` are Ray options for the actors (e.g. ``enable_task_events``);
    ``actor_proxies`` runs both proxies as Ray actors (pinned to a "gateway" resource)
    instead of in the driver.
    """
    _launch.start_ray(resources={"gateway": 2} if actor_proxies else None)
    pinned = {"send_resource_label": {"gateway": 1}, "recv_resource_label": {"gateway": 1}}
    fed.init(addresses=addresses, party=party, config={"cross_silo_comm": pinned} if actor_proxies else None)
    ray_options = ray_options or {}
    a, b = (Tiny.party(p).options(**ray_options).remote() for p in ("alice", "bob"))
    agg = Aggregator.party("alice").options(**ray_options).remote()

    def one():
        fed.get(agg.aggr.remote(a.run.remote(), b.run.remote()))

    return one


def loop_body(party, addresses, iters, warmup, profile=None):
    one = start_loop(party, addresses)
    for _ in range(warmup):
        one()
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    each = []
    cpu0, t0 = _busy_cpu_s(), time.perf_counter()
    for _ in range(iters):
        started = time.perf_counter()
        one()
        each.append(time.perf_counter() - started)
    elapsed, cpu = time.perf_counter() - t0, _busy_cpu_s() - cpu0
    if prof is not None:
        prof.disable()
        prof.dump_stats(f"{profile}.{party}")
    fed.shutdown()
    each.sort()
    return elapsed / iters * 1000, cpu / iters * 1000, each[len(each) // 2] * 1000, each[len(each) * 9 // 10] * 1000


def _busy_cpu_s() -> float:
    """CPU seconds used so far by every process on this machine (/proc/stat; both parties run here)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:8]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


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
    cpu = []
    p50, p90 = [], []
    chain = []
    for _ in range(opts.runs):
        res = _launch.run(loop_body, ("alice", "bob"),
                          args=dict(iters=opts.iters, warmup=50, profile=opts.profile))
        for p in loop:
            loop[p].append(res[p]["value"][0])
        _, used, median, tail = res["alice"]["value"]
        cpu.append(used)
        p50.append(median)
        p90.append(tail)
        print(f"loop run: alice {loop['alice'][-1]:.2f} ms/iter, bob {loop['bob'][-1]:.2f} ms/iter, "
              f"CPU {used:.2f} ms/iter, single iterations at alice p50 {median:.2f} p90 {tail:.2f} ms", flush=True)
        if not opts.no_chain:
            res = _launch.run(chain_body, ("alice", "bob", "carol"), args=dict(iters=opts.iters // 2, warmup=30))
            chain.append(max(r["value"] for r in res.values()))
            print(f"chain run: {chain[-1]:.2f} ms/hop", flush=True)
    for p, v in loop.items():
        print(_launch.summary(f"tiny-task loop at {p}", v, "ms/iter"))
    print(_launch.summary("  CPU of all processes per iteration", cpu, "ms"))
    print(_launch.summary("  single iterations at alice, p50", p50, "ms"))
    print(_launch.summary("  single iterations at alice, p90", p90, "ms"))
    if chain:
        print(_launch.summary("3-party chain alice->bob->carol", chain, "ms/hop"))


if __name__ == "__main__":
    main()
