"""Compare the driver-side proxies of another checkout with this one's, in one process.

On a shared 2-core machine two benchmark runs minutes apart differ by more
than most proxy changes, so this runs both versions side by side: each gets
its own proxy loop thread, receiver and sender (a pair of parties on
loopback), and they take turns in short blocks of round trips (bob posts a
receive, alice sends, bob's Future resolves), the order alternating. Both see
the same machine at nearly the same time; the per-pair differences say which
is cheaper.

``--base`` is the root of the other checkout (e.g. ``git worktree add
/tmp/base HEAD~1``); its ``proxy`` and ``fed`` packages are imported first and
kept under other names, then this checkout's. ``--mode value`` sends a value
already serialized (the proxies alone); ``--mode ref`` sends the result of a
Ray actor call (adds the wait for Ray). ``--bytes N`` sends a numpy array of
N bytes instead of ``None`` (with ``--mode value``; over N = 64 KiB the large
path: a Push stream of chunks, and bob's receiver puts the value in Ray).

Usage: python benchmarks/tools/proxy_ab.py --base DIR [--mode value|ref] [--bytes N] [--blocks N] [--rounds N]
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]  # the repository root
_MODULES = ("proxy", "fed._hosts.loop_thread", "fed._hosts", "fed._hosts.driver_receiver", "fed._hosts.driver_sender")


def _import_version(root: Path, tag: str) -> dict:
    """Import the proxies of the checkout at ``root``; returns the classes used here."""
    sys.path.insert(0, str(root))
    try:
        mods = {name: importlib.import_module(name) for name in _MODULES}
    finally:
        sys.path.remove(str(root))
    if Path(mods["proxy"].__file__).resolve().parents[1] != root.resolve():
        raise SystemExit(f"imported proxy from {mods['proxy'].__file__}, not from {root}")
    for name in [n for n in sys.modules if n.split(".")[0] in ("proxy", "fed")]:
        sys.modules[f"{tag}_{name}"] = sys.modules.pop(name)  # the next import loads the other checkout
    return {"LoopThread": mods["fed._hosts.loop_thread"].LoopThread,
            "DriverReceiver": mods["fed._hosts.driver_receiver"].DriverReceiver,
            "DriverSender": mods["fed._hosts.driver_sender"].DriverSender,
            "LocalValue": mods["fed._hosts"].LocalValue,
            "TransportConfig": mods["proxy"].TransportConfig,
            "dumps": mods["proxy"].dumps}


class _Rig:
    """One version's proxies: bob's receiver and alice's sender on their own loop thread."""

    def __init__(self, version: dict, addresses: dict[str, str], value):
        config = version["TransportConfig"]
        self.thread = version["LoopThread"]("silofed-proxies")
        self.bob = version["DriverReceiver"](config(job="bench", party="bob", listen_address=addresses["bob"],
                                                    peers={"alice": addresses["alice"]}, connect_timeout_s=3600),
                                             self.thread)
        self.bob.start(60)
        self.alice = version["DriverSender"](config(job="bench", party="alice", listen_address=addresses["alice"],
                                                    peers={"bob": addresses["bob"]}), False, self.thread)
        self.value = value
        self.local_value = version["LocalValue"]
        self.keys = (str(i) for i in itertools.count())

    def round_trip(self, ref) -> None:
        key = next(self.keys)
        arrived = self.bob.recv("alice", key, "bench")
        if ref is None:  # the value fed.get fetched, serialized by the sender
            self.alice.send_fetched(["bob"], key, "bench", None, self.value)
        else:
            self.alice.send("bob", key, "bench", self.local_value(ref))
        self.bob.wait([arrived], 60)

    def close(self) -> None:
        self.alice.close(5)
        self.bob.close(5)
        self.thread.stop(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, type=Path, help="root of the checkout to compare with")
    ap.add_argument("--mode", choices=("value", "ref"), default="value")
    ap.add_argument("--blocks", type=int, default=24, help="blocks per version")
    ap.add_argument("--rounds", type=int, default=400, help="round trips per block")
    ap.add_argument("--bytes", type=int, default=0, help="send a numpy array of this many bytes, not None")
    opts = ap.parse_args()
    versions = {"base": _import_version(opts.base, "base"), "this": _import_version(HERE, "this")}

    import ray

    sys.path.insert(0, str(HERE))
    from benchmarks import _launch

    _launch.start_ray()

    @ray.remote
    class Tiny:
        def run(self):
            return None

    tiny = Tiny.remote()
    ray.get(tiny.run.remote())

    def make_ref():
        if opts.mode == "value":
            return None
        ref = tiny.run.remote()
        ray.wait([ref])
        return ref

    value = None
    if opts.bytes:
        if opts.mode != "value":
            raise SystemExit("--bytes goes with --mode value")
        import numpy as np

        value = np.ones(opts.bytes, dtype=np.uint8)
    rigs = {name: _Rig(v, _launch.free_addresses(("alice", "bob")), value) for name, v in versions.items()}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in rigs}
    for block in range(opts.blocks):
        for name in (("base", "this") if block % 2 else ("this", "base")):
            rig = rigs[name]
            for _ in range(max(1, opts.rounds // 10)):
                rig.round_trip(make_ref())
            refs = [make_ref() for _ in range(opts.rounds)]
            wall, cpu = time.perf_counter(), time.process_time()
            for ref in refs:
                rig.round_trip(ref)
            figures[name].append(((time.perf_counter() - wall) / opts.rounds * 1e6,
                                  (time.process_time() - cpu) / opts.rounds * 1e6))
    for name, values in figures.items():
        print(_launch.summary(f"{name}: round trip, wall", [w for w, _ in values], "µs"))
        print(_launch.summary(f"{name}: round trip, process CPU", [c for _, c in values], "µs"))
    cpu_diff = [t[1] - b[1] for t, b in zip(figures["this"], figures["base"])]
    wall_diff = [t[0] - b[0] for t, b in zip(figures["this"], figures["base"])]
    print(f"this - base, per pair of blocks: CPU median {statistics.median(cpu_diff):+.1f} µs "
          f"(this lower in {sum(d < 0 for d in cpu_diff)} of {len(cpu_diff)}), "
          f"wall median {statistics.median(wall_diff):+.1f} µs")
    for rig in rigs.values():
        rig.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
