"""The tiny-task loop without silofed: two Rays, a bare TCP socket between the drivers.

The floor the tiny-task loop (``tiny_tasks.py``) can approach on this
machine: the same actors and calls, each party its own Ray on the same
cores, and the two values that cross parties sent as pickles over one
loopback TCP connection, by the drivers themselves (no proxies, no gRPC,
no acknowledgements, no retries, no security). What silofed adds on top of
this is its own cost. Also prints, per party, the median time from
submitting the party's Ray call on the critical path to the method starting,
and from the method's end to the value in the driver.

Usage: python benchmarks/two_rays_floor.py [--iters N] [--runs R]
"""

from __future__ import annotations

import argparse
import pickle
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

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


def _send(sock: socket.socket, value) -> None:
    data = pickle.dumps(value)
    sock.sendall(struct.pack("!I", len(data)) + data)


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


def _connect(party: str, address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    if party == "alice":
        with socket.create_server((host, int(port))) as server:
            sock, _ = server.accept()
    else:
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


def body(party, addresses, iters, warmup):
    _launch.start_ray()
    sock = _connect(party, addresses["alice"])
    actor = Tiny.remote()
    aggregator = Tiny.remote() if party == "alice" else None
    steps = []  # (submitted -> method starts, method -> value in the driver), in ns

    def one():
        if party == "alice":
            a = actor.run.remote()
            b = _recv(sock)
            submitted = now()
            started = ray.get(aggregator.aggr.remote(a, b))
            steps.append((started - submitted, now() - started))
            _send(sock, started)
        else:
            submitted = now()
            started = ray.get(actor.run.remote())
            steps.append((started - submitted, now() - started))
            _send(sock, started)
            _recv(sock)

    for _ in range(warmup):
        one()
    steps.clear()
    t0 = time.perf_counter()
    for _ in range(iters):
        one()
    elapsed = time.perf_counter() - t0
    sock.close()
    return (elapsed / iters * 1000, statistics.median(s for s, _ in steps) / 1e3,
            statistics.median(r for _, r in steps) / 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    loop = []
    for _ in range(opts.runs):
        res = _launch.run(body, ("alice", "bob"), args=dict(iters=opts.iters, warmup=100))
        loop.append(res["alice"]["value"][0])
        print(f"run: {loop[-1]:.2f} ms/iter; submitted -> method starts, method -> value in driver (µs): "
              + ", ".join(f"{p} {v['value'][1]:.0f}, {v['value'][2]:.0f}" for p, v in res.items()), flush=True)
    print(_launch.summary("tiny-task loop, two Rays and a bare socket", loop, "ms/iter"))


if __name__ == "__main__":
    main()
