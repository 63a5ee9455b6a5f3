"""The tiny-task loop without silofed: two Rays, a bare link between the drivers.

The floor the tiny-task loop (``tiny_tasks.py``) can approach on this
machine: the same actors and calls, each party its own Ray on the same
cores, and the two values that cross parties sent as pickles by the drivers
themselves (no proxies, no acknowledgements, no retries, no security). What
silofed adds on top of this is its own cost. The link is either

* ``socket``: one loopback TCP connection, read and written by the drivers'
  main threads (the lowest floor), or
* ``grpc``: gRPC as silofed uses it (grpc.aio on one uvloop thread per
  driver, polling endpoints, one client stream per direction, bytes in and
  out), with nothing of silofed's around it: the floor for a gRPC transport.

Also prints, per party, the median time from submitting the party's Ray call
on the critical path to the method starting, and from the method's start to
the value in the driver; with ``--steps``, the median of every step of the
last run's critical path, as ``critical_path.py`` prints silofed's, so that
the two compare step by step.

Usage: python benchmarks/two_rays_floor.py [--iters N] [--runs R] [--link socket|grpc] [--steps]
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import queue
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from benchmarks import _launch  # noqa: E402

now = time.monotonic_ns


@ray.remote
class Tiny:
    def run(self):
        return now()

    def aggr(self, a, b):
        return now()


class _SocketLink:
    """One loopback TCP connection between the two drivers (alice listens)."""

    def __init__(self, party: str, addresses: dict[str, str]):
        self._sock = _connect(party, addresses["alice"])

    def send(self, value) -> None:
        _send(self._sock, value)

    def recv(self):
        return _recv(self._sock)

    def close(self) -> None:
        self._sock.close()


class _GrpcLink:
    """gRPC as silofed's proxies use it, and nothing else.

    Each driver serves one client-streaming method on its own address and
    streams its values to the peer's; both run on one uvloop thread. The main
    thread hands a value to the loop and waits for arrivals on a queue.
    """

    _METHOD = "/floor.Link/Push"

    def __init__(self, party: str, addresses: dict[str, str]):
        import proxy  # noqa: F401  (imports gRPC with the polling endpoints, as silofed does)
        from fed._hosts.loop_thread import new_event_loop

        self._arrived: queue.SimpleQueue = queue.SimpleQueue()
        self._loop = new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        peer = next(p for p in addresses if p != party)
        self._run(self._start(addresses[party], addresses[peer]))

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    async def _start(self, own: str, peer: str) -> None:
        import grpc

        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "floor.Link", {"Push": grpc.stream_unary_rpc_method_handler(self._serve)}),))
        self._server.add_insecure_port(own)
        await self._server.start()
        self._channel = grpc.aio.insecure_channel(peer)
        self._call = self._channel.stream_unary(self._METHOD)(wait_for_ready=True)
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._writer = asyncio.ensure_future(self._write_all())

    async def _serve(self, requests, context) -> bytes:
        async for data in requests:
            self._arrived.put(data)
        return b""

    async def _write_all(self) -> None:
        while True:
            await self._call.write(await self._outbox.get())

    def send(self, value) -> None:
        self._loop.call_soon_threadsafe(self._outbox.put_nowait, pickle.dumps(value))

    def recv(self):
        return pickle.loads(self._arrived.get(timeout=60))

    def close(self) -> None:
        async def stop():
            self._writer.cancel()
            self._call.cancel()
            await self._channel.close()
            await self._server.stop(None)
        self._run(stop())


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("the other party closed the connection")
        data += part
    return data


def _recv(sock: socket.socket):
    (n,) = struct.unpack("!I", _recv_exactly(sock, 4))
    return pickle.loads(_recv_exactly(sock, n))


def _send(sock: socket.socket, value) -> None:
    data = pickle.dumps(value)
    sock.sendall(struct.pack("!I", len(data)) + data)


def _dial(address: str) -> socket.socket:
    """A connection to ``address``, retried for up to 60 s while nobody listens there yet."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + 60
    while True:
        try:
            sock = socket.create_connection((host, int(port)))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _connect(party: str, address: str) -> socket.socket:
    if party != "alice":
        return _dial(address)
    host, port = address.rsplit(":", 1)
    with socket.create_server((host, int(port))) as server:
        sock, _ = server.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def start_loop(party: str, addresses: dict[str, str], link: str = "socket",
               times: Optional[list] = None) -> tuple[Callable[[], None], Callable[[], None]]:
    """Start this party's Ray, the link and the loop's actors.

    Returns one iteration of the loop and the link's ``close``; each
    iteration appends this party's step times (see ``_STEPS``) to ``times``.
    """
    _launch.start_ray()
    channel = (_GrpcLink if link == "grpc" else _SocketLink)(party, addresses)
    actor = Tiny.remote()
    aggregator = Tiny.remote() if party == "alice" else None
    times = [] if times is None else times

    def one():
        if party == "alice":
            a = actor.run.remote()
            b = channel.recv()
            received = submitted = now()
            started = ray.get(aggregator.aggr.remote(a, b))
            value = now()
            channel.send(started)
            times.append((received, submitted, started, value, now()))
        else:
            begin = submitted = now()
            started = ray.get(actor.run.remote())
            value = now()
            channel.send(started)
            handed = now()
            channel.recv()
            times.append((begin, submitted, started, value, handed, now()))

    return one, channel.close


def body(party, addresses, iters, warmup, link="socket"):
    times: list = []  # per iteration, this party's steps (see _STEPS), in ns
    one, close = start_loop(party, addresses, link, times)
    per_iteration = _launch.seconds_per_call(one, iters, warmup, times.clear)
    close()
    return per_iteration * 1000, times


# The critical path of one iteration: (step, party, index in that party's tuple of times).
_STEPS = [
    ("bob: iteration begins", "bob", 0),
    ("bob: actor call submitted to Ray", "bob", 1),
    ("bob: actor method starts", "bob", 2),
    ("bob: value in the driver", "bob", 3),
    ("bob: value handed to the link", "bob", 4),
    ("alice: value received", "alice", 0),
    ("alice: aggregator call submitted", "alice", 1),
    ("alice: aggregator starts", "alice", 2),
    ("alice: value in the driver", "alice", 3),
    ("alice: value handed to the link", "alice", 4),
    ("bob: value received", "bob", 5),
]


def print_steps(times: dict[str, list[tuple]]) -> None:
    """Medians per step of the critical path (as ``critical_path.py`` prints silofed's)."""
    _launch.print_steps([(name, [t[index] for t in times[party]]) for name, party, index in _STEPS])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--link", choices=("socket", "grpc"), default="socket",
                    help="how the drivers exchange the values (default: socket)")
    ap.add_argument("--steps", action="store_true",
                    help="also print the median time of each step of the last run's critical path")
    opts = ap.parse_args()
    loop = []
    for _ in range(opts.runs):
        res = _launch.run(body, ("alice", "bob"), args=dict(iters=opts.iters, warmup=100, link=opts.link))
        times = {p: v["value"][1] for p, v in res.items()}
        loop.append(res["alice"]["value"][0])
        print(f"run: {loop[-1]:.2f} ms/iter; submitted -> method starts, method -> value in driver (µs): "
              + ", ".join(f"{p} {statistics.median(t[2] - t[1] for t in ts) / 1e3:.0f}, "
                          f"{statistics.median(t[3] - t[2] for t in ts) / 1e3:.0f}" for p, ts in times.items()),
              flush=True)
    print(_launch.summary(f"tiny-task loop, two Rays, bare {opts.link} link", loop, "ms/iter"))
    if opts.steps:
        print_steps(times)


if __name__ == "__main__":
    main()
