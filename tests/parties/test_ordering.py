"""Calls that wait for data from another party keep program order and fail like Ray tasks."""

from __future__ import annotations

import time

import pytest

import fed
from tests.support import join, leave, run_parties

pytestmark = pytest.mark.parties


@fed.remote
def late(value, delay_s):
    time.sleep(delay_s)
    return value


@fed.remote
def explode(message):
    raise ValueError(message)


@fed.remote
class Log:
    def __init__(self, first):
        self.items = [first]

    def add(self, item):
        self.items.append(item)
        return len(self.items)

    def read(self):
        return list(self.items)


def actor_order(party, addresses):
    join(party, addresses)
    # bob's values reach alice after a while; alice's own arguments are there at once
    log = Log.party("alice").remote(late.party("bob").remote("created", 1.0))
    log.add.remote("local-1")  # the actor does not exist yet: waits behind its creation
    log.add.remote(late.party("bob").remote("remote", 1.0))
    log.add.remote("local-2")  # everything here: still runs after the remote one
    failed = log.add.remote(explode.party("bob").remote("no value"))
    log.add.remote("local-3")  # runs although the call before it failed
    nothing = log.add.options(num_returns=0).remote(late.party("bob").remote("no-return", 0.5))
    order = fed.get(log.read.remote())
    try:
        fed.get(failed)
        failure = None
    except fed.RemoteError as err:
        failure = (err.origin, err.producer)
    except ValueError:  # at bob, the task's own error
        failure = ("bob", "explode")
    leave()
    return {"order": order, "failure": failure, "nothing": nothing}


def test_calls_to_an_actor_run_in_program_order_while_waiting_for_remote_data():
    run = run_parties(actor_order, ("alice", "bob"), timeout=120)
    for party in ("alice", "bob"):
        out = run.value(party)
        assert out["order"] == ["created", "local-1", "remote", "local-2", "local-3", "no-return"], party
        assert out["failure"] == ("bob", "explode"), party
        assert out["nothing"] is None
    assert "exception calling callback" not in run.parties["alice"].log  # no Future callback failed


def killed_while_created(party, addresses):
    join(party, addresses)
    log = Log.party("alice").remote(late.party("bob").remote("created", 1.0))
    n = log.add.remote("local")
    began = time.monotonic()
    fed.kill(log)  # its creation still waits for bob's value: queued behind it, returns at once
    kill_s = time.monotonic() - began
    try:
        fed.get(n)
        outcome = "ran"
    except Exception as err:  # noqa: BLE001 - which error is the point
        outcome = type(err).__name__
    leave()
    return {"kill_s": kill_s, "outcome": outcome}


def test_kill_of_an_actor_still_waiting_for_its_creation_does_not_block():
    run = run_parties(killed_while_created, ("alice", "bob"), timeout=120)
    alice, bob = run.value("alice"), run.value("bob")
    assert alice["kill_s"] < 0.5
    assert alice["outcome"] == "ActorDiedError"  # as with Ray: calls not yet run die with the actor
    assert bob["outcome"] == "RemoteError"
