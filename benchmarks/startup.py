"""Startup costs: ``fed.init`` once Ray is up, and a whole 3-party hello job.

The hello job is what a user runs first: each party is a fresh Python process
that imports fed, starts its Ray, joins, runs alice -> bob -> carol and a
``fed.get``, shuts down and exits. Its wall time is measured from process
start to exit by the launcher (the slowest party counts).

Usage: python benchmarks/startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fed  # noqa: E402
from benchmarks import _launch  # noqa: E402


@fed.remote
def hello(who, prev=""):
    return f"{prev}hello from {who}; "


def hello_job(party, addresses):
    t0 = time.monotonic()
    _launch.start_ray()
    t1 = time.monotonic()
    fed.init(addresses=addresses, party=party)
    t2 = time.monotonic()
    x = hello.party("alice").remote("alice")
    x = hello.party("bob").remote("bob", x)
    x = hello.party("carol").remote("carol", x)
    text = fed.get(x)
    assert text.count("hello") == 3, text
    t3 = time.monotonic()
    fed.shutdown()
    t4 = time.monotonic()
    import ray
    ray.shutdown()
    return {"ray_init": t1 - t0, "fed_init": t2 - t1, "job": t3 - t2, "fed_shutdown": t4 - t3,
            "ray_shutdown": time.monotonic() - t4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    walls, inits, phases = [], [], []
    for _ in range(opts.runs):
        res = _launch.run(hello_job, ("alice", "bob", "carol"), timeout=120)
        walls.append(max(r["wall_s"] for r in res.values()))
        inits.extend(r["value"]["fed_init"] for r in res.values())
        phases.append({k: max(r["value"][k] for r in res.values()) for k in res["alice"]["value"]})
        for p, r in res.items():
            print(f"  {p}: wall {r['wall_s']:.2f} s;", ", ".join(f"{k} {v:.2f} s" for k, v in r["value"].items()), flush=True)
    print(_launch.summary("fed.init after Ray is up (every party)", inits, "s"))
    print(_launch.summary("3-party hello job, start to exit (slowest)", walls, "s"))


if __name__ == "__main__":
    main()
