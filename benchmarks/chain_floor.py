"""The 3-party chain without silofed: three Rays, bare links between the drivers.

The floor the chain of ``tiny_tasks.py`` can approach on this machine: each
party its own Ray; alice runs a tiny task and sends its result to bob, bob
runs one on it and sends the result to carol, carol runs one and sends the
result to alice and bob (as ``fed.get`` at every party does). The values
cross parties as pickles sent by the drivers themselves over

* ``socket``: one loopback TCP connection per direction, or
* ``grpc``: gRPC as silofed uses it (grpc.aio on a uvloop thread per driver,
  polling endpoints, one client stream per direction), with nothing else.

Also prints the median time from submitting each task to its start and from
its start to the value in the driver: Ray's own share of a hop.

Usage: python benchmarks/chain_floor.py [--iters N] [--runs R] [--link socket|grpc]
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import queue
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from benchmarks import _launch  # noqa: E402
from benchmarks.two_rays_floor import _dial, _recv, _send  # noqa: E402

now = time.monotonic_ns

# who sends each party's result to whom
_NEXT = {"alice": ("bob",), "bob": ("carol",), "carol": ("alice", "bob")}
_PREVIOUS = {"alice": "carol", "bob": "alice", "carol": "bob"}


@ray.remote
def hop(started):
    return now()


class _SocketMesh:
    """A loopback TCP connection for each (sender, receiver) pair of the chain."""

    def __init__(self, party: str, addresses: dict[str, str]):
        host, port = addresses[party].rsplit(":", 1)
        senders = [p for p, dsts in _NEXT.items() if party in dsts]
        with socket.create_server((host, int(port))) as server:
            self._out = {dst: _dial(addresses[dst]) for dst in _NEXT[party]}
            for sock in self._out.values():
                _send(sock, party)  # tells the receiver who this connection is from
            self._in = {}
            while len(self._in) < len(senders):
                sock, _ = server.accept()
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._in[_recv(sock)] = sock

    def send(self, dst: str, value) -> None:
        _send(self._out[dst], value)

    def recv(self, src: str):
        return _recv(self._in[src])

    def close(self) -> None:
        for sock in (*self._out.values(), *self._in.values()):
            sock.close()


class _GrpcMesh:
    """gRPC as silofed's proxies use it: one client stream to each receiver, on one uvloop thread."""

    _METHOD = "/floor.Chain/Push"

    def __init__(self, party: str, addresses: dict[str, str]):
        import proxy  # noqa: F401  (imports gRPC with the polling endpoints, as silofed does)
        from fed._hosts.loop_thread import new_event_loop

        self._party = party
        self._arrived: dict[str, queue.SimpleQueue] = {p: queue.SimpleQueue() for p in addresses}
        self._loop = new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(addresses), self._loop).result(timeout=60)

    async def _start(self, addresses: dict[str, str]) -> None:
        import grpc

        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "floor.Chain", {"Push": grpc.stream_unary_rpc_method_handler(self._serve)}),))
        self._server.add_insecure_port(addresses[self._party])
        await self._server.start()
        self._outboxes: dict[str, asyncio.Queue] = {}
        for dst in _NEXT[self._party]:
            channel = grpc.aio.insecure_channel(addresses[dst])
            call = channel.stream_unary(self._METHOD)(wait_for_ready=True)
            self._outboxes[dst] = asyncio.Queue()
            asyncio.ensure_future(self._write_all(call, self._outboxes[dst]))

    async def _serve(self, requests, context) -> bytes:
        async for data in requests:
            src, value = pickle.loads(data)
            self._arrived[src].put(value)
        return b""

    @staticmethod
    async def _write_all(call, outbox: asyncio.Queue) -> None:
        while True:
            await call.write(await outbox.get())

    def send(self, dst: str, value) -> None:
        self._loop.call_soon_threadsafe(self._outboxes[dst].put_nowait, pickle.dumps((self._party, value)))

    def recv(self, src: str):
        return self._arrived[src].get()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def body(party, addresses, iters, warmup, link="socket"):
    _launch.start_ray()
    mesh = (_GrpcMesh if link == "grpc" else _SocketMesh)(party, addresses)
    ray.get(hop.remote(0))
    steps = []  # (submitted, started, value in the driver) per iteration, ns

    def one():
        value = 0 if party == "alice" else mesh.recv(_PREVIOUS[party])
        submitted = now()
        started = ray.get(hop.remote(value))
        steps.append((submitted, started, now()))
        for dst in _NEXT[party]:
            mesh.send(dst, started)
        if party != "carol":
            mesh.recv("carol")  # the chain's result, as fed.get at every party

    per_iteration = _launch.seconds_per_call(one, iters, warmup, steps.clear)
    mesh.close()
    return per_iteration / 3 * 1000, steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--link", choices=("socket", "grpc"), default="socket")
    opts = ap.parse_args()
    per_hop = []
    for _ in range(opts.runs):
        res = _launch.run(body, ("alice", "bob", "carol"), args=dict(iters=opts.iters, warmup=50, link=opts.link))
        per_hop.append(max(r["value"][0] for r in res.values()))
        steps = [s for r in res.values() for s in r["value"][1]]
        print(f"run: {per_hop[-1]:.2f} ms/hop; task submitted -> starts "
              f"{statistics.median(s[1] - s[0] for s in steps) / 1e3:.0f} µs, starts -> value in the driver "
              f"{statistics.median(s[2] - s[1] for s in steps) / 1e3:.0f} µs (medians)", flush=True)
    print(_launch.summary(f"3-party chain, three Rays, bare {opts.link} link", per_hop, "ms/hop"))


if __name__ == "__main__":
    main()
