"""Flow control across parties: bounded receiver memory and no deadlock.

See reps/0030-flow-control.md for the argument these tests attack: the
receiver buffers data nobody asked for only up to
``cross_silo_comm.unsolicited_buffer_bytes``; beyond that it answers BUSY and
the sender keeps the object in its own object store and retries; a posted
receive is always accepted, so every message is eventually delivered.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import fed
from tests.support import join, leave, run_parties

pytestmark = pytest.mark.parties

BUDGET = 1 << 20


@fed.remote
def make(i, nbytes):
    return np.full(nbytes, i % 251, dtype=np.uint8)


@fed.remote
def check(i, arr):
    return int(arr[0] == i % 251 and arr[-1] == i % 251)


@fed.remote
def count(*oks):
    return sum(oks)


def _wait_for_pushback(what: str, deadline_s: float = 60.0) -> dict:
    """Block until this party's receiver has refused unsolicited data (BUSY)."""
    end = time.monotonic() + deadline_s
    while True:
        received = fed.stats()["received"]
        if received["busy_replies"] > 0:
            return received
        if time.monotonic() > end:
            raise AssertionError(f"{what}: the receiver never reported BUSY: {received}")
        time.sleep(0.05)


def _join_small_budget(party, addresses):
    join(party, addresses, config={"cross_silo_comm": {"unsolicited_buffer_bytes": BUDGET}})


# -- 2,000 objects pushed before the receiver asks, consumed in reverse ---------

def many_unsolicited(party, addresses, n, nbytes):
    t0 = time.monotonic()
    _join_small_budget(party, addresses)
    phases = {"init": time.monotonic() - t0}
    objs = [make.party("alice").remote(i, nbytes) for i in range(n)]
    before = None
    if party == "bob":
        # alice pushes everything in the loop below; bob asks for nothing until
        # its receiver has been filled to the budget and started refusing.
        before = _wait_for_pushback("bob")
    phases["pushback"] = time.monotonic() - t0
    oks = [check.party("bob").remote(i, objs[i]) for i in reversed(range(n))]
    phases["submitted"] = time.monotonic() - t0
    total = fed.get(count.party("bob").remote(*oks))
    phases["done"] = time.monotonic() - t0
    stats = fed.stats()
    leave()
    phases["left"] = time.monotonic() - t0
    return {"total": total, "before": before, "stats": stats, "phases": phases}


def test_2000_objects_pushed_before_asked_are_all_delivered_within_budget(placement):
    n, nbytes = 2000, 16 << 10
    run = run_parties(many_unsolicited, ("alice", "bob"), args={"n": n, "nbytes": nbytes}, timeout=150,
                      placement=placement)
    assert run.value("alice")["total"] == n
    bob = run.value("bob")
    assert bob["total"] == n
    received = bob["stats"]["received"]
    assert received["received"] >= n
    # nothing was asked for while alice pushed: the budget filled and bob refused more
    assert bob["before"]["busy_replies"] > 0
    assert bob["before"]["received"] < n
    message = nbytes + 1024  # one array plus its pickle header
    assert received["peak_buffered_bytes"] <= BUDGET + message, received
    assert received["buffered_bytes"] == 0
    alice_sent = run.value("alice")["stats"]["sent"]["bob"]
    assert alice_sent["busy"] > 0, alice_sent


# -- the paired-exchange ring ---------------------------------------------------

RING = ("alice", "bob", "carol", "dave")


def ring_exchange(party, addresses, n, nbytes, laggard):
    _join_small_budget(party, addresses)
    nxt = {p: RING[(i + 1) % len(RING)] for i, p in enumerate(RING)}
    objs = {p: [make.party(p).remote(i, nbytes) for i in range(n)] for p in RING}
    if party == laggard:
        # the laggard's upstream neighbour sends to it without waiting for it;
        # the laggard starts its own exchange only once its receiver is full.
        _wait_for_pushback(party)
    oks = {p: [] for p in RING}
    for i in reversed(range(n)):
        for p in RING:  # p sends to its neighbour; the neighbour receives from p
            oks[nxt[p]].append(check.party(nxt[p]).remote(i, objs[p][i]))
    totals = fed.get([count.party(p).remote(*oks[p]) for p in RING])
    stats = fed.stats()
    leave()
    return {"totals": totals, "stats": stats}


def test_ring_of_paired_exchanges_completes_within_budget(placement):
    n, nbytes = 48, 128 << 10
    run = run_parties(ring_exchange, RING, args={"n": n, "nbytes": nbytes, "laggard": "dave"}, timeout=150,
                      placement=placement)
    message = nbytes + 1024
    for p in RING:
        out = run.value(p)
        assert out["totals"] == [n] * len(RING), (p, out["totals"])
        received = out["stats"]["received"]
        assert received["peak_buffered_bytes"] <= BUDGET + message, (p, received)
        assert received["buffered_bytes"] == 0, (p, received)
    assert run.value("dave")["stats"]["received"]["busy_replies"] > 0
