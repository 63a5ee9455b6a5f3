"""Where one iteration of the tiny-task loop spends its time, step by step.

Runs the loop of ``tiny_tasks.py`` (actor at alice and at bob, aggregator at
alice, ``fed.get`` everywhere) with timestamps at each step of its critical
path: bob's actor call submitted and started, bob's push started, alice's
receiver delivering it, the aggregator call submitted and started, alice's
``fed.get`` returning, alice's push, bob's receiver delivering it, bob's
``fed.get`` returning. All processes read the same ``CLOCK_MONOTONIC``, so
timestamps from different parties compare directly. Prints, per step, the
median time since bob's iteration began and since the previous step.

The steps inside silofed are timed by wrapping its (private) proxy methods in
the party processes; the numbers are for finding the slow step, not for the
issue's targets (``tiny_tasks.py`` measures those, without instrumentation).

With ``--chain``, the same for the 3-party chain of ``tiny_tasks.py``
(alice -> bob -> carol, each hop a Ray task taking the previous result, and
``fed.get`` of the last): when each task is submitted and starts, each push,
each delivery; medians since alice's iteration began.

Usage: python benchmarks/tools/critical_path.py [--iters N] [--chain]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import fed  # noqa: E402
from benchmarks import _launch  # noqa: E402

now = time.monotonic_ns


@fed.remote
class Tiny:
    def __init__(self):
        self.started = []

    def run(self):
        self.started.append(now())

    def times(self):
        return self.started


@fed.remote
class Aggregator:
    def __init__(self):
        self.started = []

    def aggr(self, a, b):
        self.started.append(now())

    def times(self):
        return self.started


def _instrument(events: list) -> None:
    """Record (step, producer, time) from inside the proxies and fed's submission to Ray."""
    import fed._job as job_module
    import fed._hosts.driver_receiver as receiver_host
    import proxy._receive_table as receive_table
    import proxy._sender as sender

    push = sender.SenderProxy._push

    async def timed_push(self, dst, key, producer, kind, *args, **kwargs):
        if kind == 0:  # data, not the DONE at shutdown
            events.append(("push", producer, now()))
        return await push(self, dst, key, producer, kind, *args, **kwargs)

    deliver = receive_table.ReceiveTable.deliver

    def timed_deliver(self, src, key, arrival, admission, **kwargs):
        events.append(("delivered", arrival.producer, now()))
        return deliver(self, src, key, arrival, admission, **kwargs)

    resolve = receiver_host.DriverReceiver._resolve

    def timed_resolve(self, pending, received):
        events.append(("resolved", pending.producer, now()))
        resolve(self, pending, received)

    call = job_module.Job.call

    def timed_call(self, party, producer, num_returns, submit, *args, **kwargs):
        def timed_submit(a, kw):  # from just before Ray's .remote(), as two_rays_floor.py times it
            events.append(("submit", producer, now()))
            return submit(a, kw)

        return call(self, party, producer, num_returns, timed_submit, *args, **kwargs)

    sender.SenderProxy._push = timed_push
    receive_table.ReceiveTable.deliver = timed_deliver
    receiver_host.DriverReceiver._resolve = timed_resolve
    job_module.Job.call = timed_call


def loop_body(party, addresses, iters):
    events: list = []
    _instrument(events)
    _launch.start_ray()
    fed.init(addresses=addresses, party=party)
    a, b = Tiny.party("alice").remote(), Tiny.party("bob").remote()
    agg = Aggregator.party("alice").remote()
    for _ in range(iters):
        events.append(("iteration", "", now()))
        fed.get(agg.aggr.remote(a.run.remote(), b.run.remote()))
        events.append(("fed.get returned", "", now()))
    started = fed.get([b.times.remote(), agg.times.remote()])
    fed.shutdown()
    return events, started


@fed.remote
def hop(started):
    return started + (now(),)


def chain_body(party, addresses, iters):
    events: list = []
    _instrument(events)
    _launch.start_ray()
    fed.init(addresses=addresses, party=party)
    started = []
    for _ in range(iters):
        events.append(("iteration", "", now()))
        x = hop.party("alice").remote(())
        x = hop.party("bob").remote(x)
        started.append(fed.get(hop.party("carol").remote(x)))
        events.append(("fed.get returned", "", now()))
    fed.shutdown()
    return events, started


def _steps_of_chain(iters: int) -> list[tuple[str, list[int]]]:
    res = _launch.run(chain_body, ("alice", "bob", "carol"), args=dict(iters=iters))
    events = {p: v["value"][0] for p, v in res.items()}
    started = res["alice"]["value"][1]

    def at(party, step, every=1):  # every hop's producer is "hop": bob also receives carol's result
        return [t for s, _, t in events[party] if s == step][::every][:iters]

    return [
        ("alice: iteration begins", at("alice", "iteration")),
        ("alice: task submitted to Ray", at("alice", "submit")),
        ("alice: task starts", [s[0] for s in started]),
        ("alice: push of its result starts", at("alice", "push")),
        ("bob: receiver delivers it", at("bob", "delivered", 2)),
        ("bob: receive resolved", at("bob", "resolved", 2)),
        ("bob: task submitted to Ray", at("bob", "submit")),
        ("bob: task starts", [s[1] for s in started]),
        ("bob: push of its result starts", at("bob", "push")),
        ("carol: receiver delivers it", at("carol", "delivered")),
        ("carol: task submitted to Ray", at("carol", "submit")),
        ("carol: task starts", [s[2] for s in started]),
        ("alice: receiver delivers carol's result", at("alice", "delivered")),
        ("alice: fed.get returns", at("alice", "fed.get returned")),
    ]


def _steps_of_loop(iters: int) -> list[tuple[str, list[int]]]:
    res = _launch.run(loop_body, ("alice", "bob"), args=dict(iters=iters))
    (alice, (bob_run, agg_run)), (bob, _) = res["alice"]["value"], res["bob"]["value"]

    def at(events, step, producer=""):
        return [t for s, p, t in events if s == step and producer in p][:iters]

    return [
        ("bob: iteration begins", at(bob, "iteration")),
        ("bob: actor call submitted to Ray", at(bob, "submit", "run")),
        ("bob: actor method starts", bob_run[:iters]),
        ("bob: push of its result starts", at(bob, "push", "Tiny.run")),
        ("alice: receiver delivers it", at(alice, "delivered", "Tiny.run")),
        ("alice: receive resolved", at(alice, "resolved", "Tiny.run")),
        ("alice: aggregator call submitted", at(alice, "submit", "aggr")),
        ("alice: aggregator starts", agg_run[:iters]),
        ("alice: fed.get returns", at(alice, "fed.get returned")),
        ("alice: push of the aggregate starts", at(alice, "push", "Aggregator.aggr")),
        ("bob: receiver delivers it", at(bob, "delivered", "Aggregator.aggr")),
        ("bob: fed.get returns", at(bob, "fed.get returned")),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--chain", action="store_true", help="the 3-party chain of tiny_tasks.py instead of the loop")
    opts = ap.parse_args()
    steps = (_steps_of_chain if opts.chain else _steps_of_loop)(opts.iters)
    for name, times in steps:
        assert len(times) == opts.iters, f"{name}: {len(times)} timestamps for {opts.iters} iterations"
    _launch.print_steps(steps, skip=opts.iters // 5)  # the first fifth is warm-up

if __name__ == "__main__":
    # The parties import the bodies by module name, so run them from the module, not __main__.
    from benchmarks.tools import critical_path

    critical_path.main()
