"""Ship a large numpy array from alice to bob and check that it arrived intact.

alice creates a 256 MiB array (``--mib`` to change) and computes its SHA-256;
bob receives the array (streamed in chunks, rebuilt in his Ray object store
without an extra copy) and computes the SHA-256 of what arrived. Both print the
two digests, the transfer time and throughput; the exit code is 1 if they differ.

Memory: the array lives in each party's Ray object store, so each party starts
Ray with a 1 GiB object store (``--store-mib``); on a machine with little
``/dev/shm`` lower it, Ray then spills to disk. Run both parties with::

    fed run --config configs/local-2party.yaml examples/big_array.py
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

import numpy as np

import fed


@fed.remote
def make_array(mib: int, seed: int) -> np.ndarray:
    """``mib`` MiB of seeded pseudo-random int64 values."""
    return np.random.default_rng(seed).integers(0, 2**62, size=mib * (1 << 20) // 8, dtype=np.int64)


@fed.remote
def digest(array: np.ndarray) -> tuple[str, float]:
    """SHA-256 of the array's bytes, and the wall-clock time at which it was taken."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")).hexdigest(), time.time()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="array size in MiB (default 256)")
    parser.add_argument("--store-mib", type=int, default=1024, help="Ray object store per party (default 1024)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    fed.init(ray_init_kwargs={"num_cpus": 2, "object_store_memory": args.store_mib << 20,
                              "include_dashboard": False})
    try:
        array = make_array.party("alice").remote(args.mib, args.seed)
        at_alice = digest.party("alice").remote(array)
        at_bob = digest.party("bob").remote(array)  # the array is pushed alice -> bob
        (sent, t_alice), (received, t_bob) = fed.get([at_alice, at_bob])
        print(f"alice sha256 {sent}", flush=True)
        print(f"bob   sha256 {received}", flush=True)
        elapsed = max(t_bob - t_alice, 1e-6)
        print(f"{args.mib} MiB alice -> bob: bob's digest done {elapsed:.2f} s after alice's "
              f"(~{args.mib / elapsed:.0f} MiB/s incl. hashing)", flush=True)
        ok = sent == received
        print("checksums match" if ok else "CHECKSUM MISMATCH", flush=True)
    finally:
        fed.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
