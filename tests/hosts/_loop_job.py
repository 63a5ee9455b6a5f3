"""A job that keeps exchanging small objects between alice, bob and carol (run with ``fed run``).

Each round every party adds to the running total and every party fetches every
party's share, so each party waits for data from each other party every round.
It prints ``round N`` per round; on a failure it prints one line
``FAILED <error type> peer=<peer> t=<unix time> <message>`` and re-raises.
"""

from __future__ import annotations

import sys
import time

import fed

PARTIES = ("alice", "bob", "carol")


@fed.remote
def share(total, by):
    return total + by


@fed.remote
def add(*xs):
    return sum(xs)


def main(rounds: int) -> int:
    fed.init(ray_init_kwargs={"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024,
                              "include_dashboard": False})
    try:
        total = 0
        for r in range(rounds):
            xs = [share.party(p).remote(total, i + 1) for i, p in enumerate(PARTIES)]
            total = add.party("alice").remote(*xs)
            fed.get(xs)
            print(f"round {r}", flush=True)
            time.sleep(0.1)  # pace the job: it must run for a while, not hog the shared cores
    except fed.FedError as exc:
        print(f"FAILED {type(exc).__name__} peer={getattr(exc, 'peer', '?')} t={time.time():.3f} "
              f"{str(exc).splitlines()[0]}", flush=True)
        raise
    finally:
        fed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
