"""How soon the proxy loop has an actor call's result: awaiting the ref, or through the RefGetter.

One process, one Ray (no parties): an actor method returns the time it
returned; a coroutine on a proxy-style loop thread waits for the value and
notes how long after the return it has it. The two ways alternate in blocks
(so a slow phase of the machine hits both): ``await ref`` (Ray's completion
callback) and ``fed._hosts.ref_getter.RefGetter`` (``ray.get`` on a helper thread,
reps/0140-quick-object-gets.md). Prints, per way, the median over blocks of
each block's median, with min and max.

Usage: python benchmarks/tools/object_wait.py [--blocks N] [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import ray  # noqa: E402

from benchmarks import _launch  # noqa: E402
from benchmarks.two_rays_floor import Tiny, now  # noqa: E402  (an actor whose run() returns when it ran)
from fed._hosts.loop_thread import LoopThread  # noqa: E402
from fed._hosts.ref_getter import RefGetter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--calls", type=int, default=100, help="calls per block")
    opts = ap.parse_args()
    _launch.start_ray()
    actor = Tiny.remote()
    ray.get(actor.run.remote())
    thread, getter = LoopThread("silofed-proxies"), RefGetter()

    async def awaited(ref):
        returned = await ref
        return now() - returned

    async def through_getter(ref):
        returned = await getter.value(ref)
        return now() - returned

    ways = {"await ref": awaited, "RefGetter": through_getter}
    blocks: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(opts.blocks):
        for name, wait in ways.items():
            lags = [thread.run(wait(actor.run.remote()), "bench").result(30) for _ in range(opts.calls)]
            blocks[name].append(statistics.median(lags) / 1e3)
    for name, values in blocks.items():
        print(_launch.summary(f"method returned -> value on the loop, {name}", values, "µs"))
    print(f"(objects got on the helper thread: {getter.quick_gets} of {opts.blocks * opts.calls})")
    getter.close()
    thread.stop(5)
    ray.shutdown()


if __name__ == "__main__":
    main()
