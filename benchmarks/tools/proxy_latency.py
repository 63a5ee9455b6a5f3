"""Latency of the proxies alone, in one process: a driver-side send and a receive of ``None``.

Alice's sender and bob's receiver run on one loop thread in this process, as
``fed.init`` starts a party's proxies (REP 0050, 0060); here they are two
parties' proxies sharing one process, so the figures bound one round trip's
total cost.
Per operation, wall time and this process's CPU time:

* send: one push of an already computed ``None`` (an ObjectRef) until bob
  acknowledged it (bob has not asked for it yet: it is buffered). Bob
  answers at once here: a party batches its answers over up to 20 ms
  (REP 0080), which would make this row time the batching, not the exchange;
* recv: bob's receive of an object that is already there (a Future);
* round: bob posts the receive, alice sends, bob's Future resolves.

Usage: python benchmarks/tools/proxy_latency.py [--iters N] [--runs R]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import ray  # noqa: E402

from benchmarks import _launch  # noqa: E402
from fed._hosts.loop_thread import LoopThread  # noqa: E402
from fed._hosts import LocalValue  # noqa: E402
from fed._hosts.driver_receiver import DriverReceiver  # noqa: E402
from fed._hosts.driver_sender import DriverSender  # noqa: E402
from proxy import TransportConfig, _stream_answers  # noqa: E402


def _time(fn, iters: int) -> tuple[float, float]:
    for _ in range(iters // 10):
        fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - wall) / iters * 1000, (time.process_time() - cpu) / iters * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    _stream_answers.BATCH_DELAY_S = 0  # see "send" above
    addrs = _launch.free_addresses(("alice", "bob"))
    _launch.start_ray()
    thread = LoopThread("silofed-proxies")
    bob = DriverReceiver(TransportConfig(job="bench", party="bob", listen_address=addrs["bob"],
                                         peers={"alice": addrs["alice"]},
                                         connect_timeout_s=3600),  # alice has no receiver: bob's pings must not give up
                         thread)
    bob.start(60)
    alice = DriverSender(TransportConfig(job="bench", party="alice", listen_address=addrs["alice"],
                                         peers={"bob": addrs["bob"]}), False, thread)
    none_ref = LocalValue(ray.put(None))
    sent, received, rounds = itertools.count(), itertools.count(), itertools.count()

    def send():
        alice.send("bob", str(next(sent)), "bench", none_ref).result()

    def recv():
        bob.wait([bob.recv("alice", str(next(received)), "bench")], None)

    def round_trip():
        key = f"r{next(rounds)}"
        arrived = bob.recv("alice", key, "bench")
        alice.send("bob", key, "bench", none_ref)
        bob.wait([arrived], None)

    figures: dict[str, list[tuple[float, float]]] = {"send": [], "recv": [], "round": []}
    for _ in range(opts.runs):
        figures["send"].append(_time(send, opts.iters))
        figures["recv"].append(_time(recv, opts.iters))  # every key was sent above
        figures["round"].append(_time(round_trip, opts.iters))
    for name, values in figures.items():
        print(_launch.summary(f"{name}: wall", [w for w, _ in values], "ms"))
        print(_launch.summary(f"{name}: process CPU", [c for _, c in values], "ms"))
    alice.close(5)
    bob.close(5)
    thread.stop(5)
    ray.shutdown()


if __name__ == "__main__":
    main()
