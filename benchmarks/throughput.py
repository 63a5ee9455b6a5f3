"""Throughput of one alice -> bob transfer of a numpy array, and receiver memory.

For each size: alice makes the array (and waits until it exists), then times
from submitting a bob task that takes it to that task starting with the array
in hand (both parties run on this machine, so their clocks agree). Meanwhile
bob samples its driver process, where its receiver runs (REP 0060): private
memory (RssAnon) and the shared-memory pages it wrote into bob's object
store (RssShmem), over what it had just before the transfer; and its private
memory over what it had before its first transfer, which also counts the
payload buffers the receiver keeps mapped for reuse between transfers
(REP 0170).

Usage: python benchmarks/throughput.py [--sizes 1M,16M,256M,1G] [--runs 3] [--pause 0]

``--pause S`` waits S seconds before each transfer, as a job computes between
rounds: memory freed meanwhile may have gone back to the VM's host (REP 0170).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import ray  # noqa: E402

import fed  # noqa: E402
from benchmarks import _launch  # noqa: E402

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    return int(float(text[:-1]) * UNITS[text[-1].upper()]) if text[-1].upper() in UNITS else int(text)


@fed.remote
def make(nbytes):
    return np.ones(nbytes, dtype=np.uint8)


@fed.remote
def consume(arr):
    return time.time(), int(arr.nbytes), int(arr[-1])


def _rss(proc: psutil.Process) -> tuple[int, int]:
    """(RssAnon, RssShmem) of a process in bytes."""
    anon = shm = 0
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith("RssShmem:"):
                shm = int(line.split()[1]) * 1024
    return anon, shm


class _Sampler:
    """Samples the receiving process's memory every few ms while a transfer runs."""

    def __init__(self, proc: psutil.Process, first_anon: int):
        self.proc = proc
        self.base = _rss(proc)
        self.first_anon = first_anon
        self.peak_anon = self.peak_shm = self.peak_sum = self.peak_anon_all = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            anon, shm = _rss(self.proc)
            da, ds = anon - self.base[0], shm - self.base[1]
            self.peak_anon, self.peak_shm = max(self.peak_anon, da), max(self.peak_shm, ds)
            self.peak_sum = max(self.peak_sum, da + ds)
            self.peak_anon_all = max(self.peak_anon_all, anon - self.first_anon)
            time.sleep(0.005)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"anon": self.peak_anon, "shm": self.peak_shm, "sum": self.peak_sum, "anon_all": self.peak_anon_all}


def body(party, addresses, sizes, runs, pause=0.0):
    biggest = max(sizes)
    store = max(512 << 20, min(2 * biggest + (512 << 20), biggest + (1 << 30)))
    _launch.start_ray(object_store_bytes=store)
    fed.init(addresses=addresses, party=party)
    proc = psutil.Process() if party == "bob" else None  # the receiver runs in the driver
    first_anon = _rss(proc)[0] if proc is not None else 0
    out = []
    for nbytes in sizes:
        for rep in range(runs + 1):  # the first one warms up
            time.sleep(pause)
            arr = make.party("alice").remote(nbytes)
            if party == "alice":
                ray.wait([arr.get_ray_object_ref()], fetch_local=False)
            sampler = _Sampler(proc, first_anon) if proc is not None else None
            t0 = time.time()
            got = fed.get(consume.party("bob").remote(arr))
            mem = sampler.stop() if sampler is not None else None
            if rep and party == "alice":
                out.append({"bytes": nbytes, "seconds": got[0] - t0})
            elif rep:
                out.append({"bytes": nbytes, "mem": mem})
            assert got[1] == nbytes and got[2] == 1
            del arr, got
    fed.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,16M,256M,1G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pause", type=float, default=0.0, help="seconds to wait before each transfer")
    opts = ap.parse_args()
    sizes = [parse_size(s) for s in opts.sizes.split(",")]
    res = _launch.run(body, ("alice", "bob"), args=dict(sizes=sizes, runs=opts.runs, pause=opts.pause), timeout=1800)
    for nbytes in sizes:
        secs = [r["seconds"] for r in res["alice"]["value"] if r["bytes"] == nbytes]
        mems = [r["mem"] for r in res["bob"]["value"] if r["bytes"] == nbytes]
        label = f"{nbytes / (1 << 20):g} MiB"
        print(_launch.summary(f"alice->bob {label}", [nbytes / s / 1e6 for s in secs], "MB/s"))
        print(_launch.summary("  receiver peak extra (anon+shm) / payload", [m["sum"] / nbytes for m in mems], "x"))
        print(_launch.summary("    of which private (anon) / payload", [m["anon"] / nbytes for m in mems], "x"))
        print(_launch.summary("  private over before the first transfer", [m["anon_all"] / nbytes for m in mems], "x"))


if __name__ == "__main__":
    main()
