"""Core programming model across parties: the RayFed example, nesting, returns, actors."""

from __future__ import annotations

import time

import pytest
import ray

import fed
from tests.support import join, leave, local_addresses, placed, run_parties, start_ray

pytestmark = pytest.mark.parties


# -- the RayFed README program, unchanged -----------------------------------
# (so with RayFed's default placement only: it configures none; the tests below run for both)

@fed.remote
class MyActor:
    def __init__(self, value):
        self.value = value

    def inc(self, num):
        self.value = self.value + num
        return self.value


@fed.remote
def aggregate(val1, val2):
    return val1 + val2


def rayfed_readme(party, addresses):
    ray.init(num_cpus=2, object_store_memory=300 * 1024 * 1024, include_dashboard=False)
    fed.init(addresses=addresses, party=party)
    actor_alice = MyActor.party("alice").remote(1)
    actor_bob = MyActor.party("bob").remote(1)
    val_alice = actor_alice.inc.remote(1)
    val_bob = actor_bob.inc.remote(2)
    sum_val_obj = aggregate.party("bob").remote(val_alice, val_bob)
    result = fed.get(sum_val_obj)
    fed.shutdown()
    ray.shutdown()
    return result


def test_rayfed_readme_example_gives_5_at_both_parties():
    run = run_parties(rayfed_readme, ("alice", "bob"))
    assert run.value("alice") == 5
    assert run.value("bob") == 5


# -- programming model: nesting, multiple returns, actors, reuse -------------

@fed.remote
def make(x):
    return x


@fed.remote
def total(tree):
    """Sum every number in a nested structure of lists, tuples and dicts."""
    if isinstance(tree, dict):
        return sum(total.__wrapped__(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(total.__wrapped__(v) for v in tree)
    return tree


def _total(tree):
    if isinstance(tree, dict):
        return sum(_total(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(_total(v) for v in tree)
    return tree


total.__wrapped__ = _total


@fed.remote
def describe(tree, *, scale=1):
    return {"types": [type(tree).__name__, type(tree["pair"]).__name__], "sum": _total(tree) * scale}


@fed.remote
def split3(x):
    return x, x * 10, x * 100


@fed.remote
class Counter:
    def __init__(self, start):
        self.count = start

    def add(self, n):
        self.count += n
        return self.count

    def pair(self):
        return self.count, -self.count


@fed.remote
def identity(x):
    return x


def programming_model(party, addresses):
    join(party, addresses)
    out = {}
    a = make.party("alice").remote(1)
    b = make.party("bob").remote(2)
    # nested FedObjects, owned by both parties, consumed at each party
    tree = {"l": [a, (b, [a])], "pair": (b, 5), "d": {"x": {"y": b}}}
    out["nested_at_bob"] = fed.get(describe.party("bob").remote(tree, scale=2))
    out["nested_at_alice"] = fed.get(describe.party("alice").remote(tree))
    out["nested_kwarg"] = fed.get(total.party("alice").remote(tree=[a, {"k": b}]))
    # .party() returns a new bound object and leaves the original alone
    f_alice = make.party("alice")
    f_bob = make.party("bob")
    out["bound"] = [f_alice.remote(7).get_party(), f_bob.remote(8).get_party()]
    # multiple returns, for a function and an actor method
    x, y, z = split3.options(num_returns=3).party("bob").remote(a)
    out["num_returns"] = fed.get([x, y, z])
    # actor state across parties and calls
    c = Counter.party("bob").remote(10)
    for n in (1, 2, 3):
        c.add.remote(a if n == 1 else n)
    last = c.add.remote(b)
    out["actor_state"] = fed.get(last)
    p, q = c.pair.options(num_returns=2).remote()
    out["actor_num_returns"] = fed.get([p, q])
    # object reuse: one object used by many calls at bob is sent once
    big = make.party("alice").remote(list(range(1000)))
    before = fed.stats()
    uses = [identity.party("bob").remote(big) for _ in range(5)]
    out["reuse_values"] = [len(v) for v in fed.get(uses)]
    after = fed.stats()
    deadline = time.monotonic() + 10
    while after["sent"].get("bob", {}).get("in_flight") and time.monotonic() < deadline:
        time.sleep(0.01)  # a send counts once acknowledged, which bob may batch for up to 20 ms
        after = fed.stats()
    out["reuse_sent_to_bob"] = after["sent"].get("bob", {}).get("sent", 0) - before["sent"].get("bob", {}).get("sent", 0)
    out["reuse_received"] = after["received"]["received"] - before["received"]["received"]
    # many objects in flight before any get
    flight = [identity.party("bob" if i % 2 else "alice").remote(i) for i in range(300)]
    summed = total.party("alice").remote(flight)
    out["in_flight"] = fed.get(summed)
    out["stats"] = fed.stats()
    leave()
    return out


def test_programming_model_nesting_returns_actors_reuse(placement):
    run = run_parties(programming_model, ("alice", "bob"), timeout=150, placement=placement)
    for party in ("alice", "bob"):
        out = run.value(party)
        assert out["nested_at_bob"] == {"types": ["dict", "tuple"], "sum": (1 + 2 + 1 + 2 + 5 + 2) * 2}
        assert out["nested_at_alice"] == {"types": ["dict", "tuple"], "sum": 13}
        assert out["nested_kwarg"] == 3
        assert out["bound"] == ["alice", "bob"]
        assert out["num_returns"] == [1, 10, 100]
        assert out["actor_state"] == 10 + 1 + 2 + 3 + 2
        assert out["actor_num_returns"] == [18, -18]
        assert out["reuse_values"] == [1000] * 5
        assert out["in_flight"] == sum(range(300))
    # `big` crossed from alice to bob once although five calls at bob used it
    assert run.value("alice")["reuse_sent_to_bob"] == 1
    assert run.value("bob")["reuse_received"] == 1


# -- three parties: a 20-hop chain and a 64 MiB array -------------------------

@fed.remote
def hop(x, party):
    return x + [party]


@fed.remote
def make_array(n_bytes, seed):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 255, size=n_bytes, dtype=np.uint8)


@fed.remote
def checksum(arr):
    import hashlib

    return hashlib.sha256(arr.tobytes()).hexdigest(), arr.nbytes, bool(arr.flags.writeable)


def chain_and_array(party, addresses):
    join(party, addresses)
    order = ["alice", "bob", "carol"]
    x = make.party("alice").remote([])
    for i in range(20):
        x = hop.party(order[(i + 1) % 3]).remote(x, order[(i + 1) % 3])
    path = fed.get(x)
    arr = make_array.party("alice").remote(64 << 20, 7)
    at_carol = checksum.party("carol").remote(arr)
    at_alice = checksum.party("alice").remote(arr)
    sums = fed.get([at_carol, at_alice])
    leave()
    return {"path": path, "sums": sums}


def test_three_party_chain_and_64mib_array(placement):
    run = run_parties(chain_and_array, ("alice", "bob", "carol"), timeout=180, placement=placement)
    expected_path = [["alice", "bob", "carol"][(i + 1) % 3] for i in range(20)]
    for party in ("alice", "bob", "carol"):
        out = run.value(party)
        assert out["path"] == expected_path
        (carol_sum, carol_n, _), (alice_sum, alice_n, _) = out["sums"]
        assert carol_n == alice_n == 64 << 20
        assert carol_sum == alice_sum


# -- start order, re-init ---------------------------------------------------------

def late_start(party, addresses):
    join(party, addresses)
    a = make.party("alice").remote(40)
    b = aggregate.party("bob").remote(a, 2)
    result = fed.get(b)
    leave()
    return result


def test_bob_starts_5s_after_alice(placement):
    run = run_parties(late_start, ("alice", "bob"), start_delay={"bob": 5.0}, timeout=120, placement=placement)
    assert run.value("alice") == run.value("bob") == 42


def reinit(party, addresses, second_addresses):
    start_ray()
    results = []
    for job, addrs in (("first", addresses), ("second", second_addresses)):
        fed.init(addresses=addrs, party=party, job_name=job, config=placed())
        a = make.party("alice").remote(len(job))
        b = aggregate.party("bob").remote(a, 100)
        results.append(fed.get(b))
        fed.shutdown()
        leaks = _leaks(addrs[party])
        assert not leaks, leaks
    ray.shutdown()
    return results


def _leaks(address):
    """What fed.shutdown left behind: silofed threads, the listening port, proxy actors."""
    import socket
    import threading

    found = [t.name for t in threading.enumerate() if t.name.startswith("silofed")]
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        # as any server does; a listener still open makes bind fail even so
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as exc:
            found.append(f"port {port} still bound: {exc}")
    deadline = time.monotonic() + 10  # ray.kill completes asynchronously
    while True:
        proxies = [n for n in ray.util.list_named_actors() if n.startswith("silofed:")]
        if not proxies or time.monotonic() > deadline:
            return found + proxies
        time.sleep(0.1)


def test_reinit_in_same_process_with_new_job_and_addresses(placement):
    second = local_addresses(["alice", "bob"])
    run = run_parties(reinit, ("alice", "bob"), args={"second_addresses": second}, timeout=120,
                      placement=placement)
    assert run.value("alice") == run.value("bob") == [105, 106]


# -- where the sender runs (REP 0050) -------------------------------------------

@fed.remote
def fail_with(message):
    raise ValueError(message)


def proxy_placement(party, addresses):
    pinned = party == "alice"
    ray.init(num_cpus=2, object_store_memory=300 * 1024 * 1024, include_dashboard=False,
             resources={"gateway": 2} if pinned else None)
    comm = {"send_resource_label": {"gateway": 1}, "recv_resource_label": {"gateway": 1}} if pinned else {}
    fed.init(addresses=addresses, party=party, config={"cross_silo_comm": comm})
    proxy_actors = sorted(n.rsplit(":", 1)[1] for n in ray.util.list_named_actors() if n.startswith("silofed:"))
    a = make.party("alice").remote(20)
    b = aggregate.party("bob").remote(a, 22)
    big = make.party("alice").remote(bytes(3 << 20))  # a Push stream of chunks, not the small-message stream
    value = fed.get(b)
    gateway_free = ray.available_resources().get("gateway", 0)  # the actor has started by now
    size = len(fed.get(big))
    try:
        fed.get(fail_with.party("alice").remote("expected failure"))
        error = None
    except fed.RemoteError as exc:  # at bob
        error = exc.origin
    except ValueError:  # at alice, where it failed: the task's own error
        error = party
    received = fed.stats()["received"]["from"]
    leave()
    return {"proxy_actors": proxy_actors, "gateway_free": gateway_free, "value": value, "size": size,
            "error_origin": error, "received": {p: r["received"] for p, r in received.items()}}


def test_proxies_run_in_the_driver_unless_pinned_to_a_gateway():
    run = run_parties(proxy_placement, ("alice", "bob"))
    alice, bob = run.value("alice"), run.value("bob")
    assert alice["proxy_actors"] == ["receiver", "sender"] and alice["gateway_free"] == 0  # they hold the gateway
    assert bob["proxy_actors"] == []  # the default: both proxies run in bob's driver
    for out in (alice, bob):
        assert out["value"] == 42 and out["size"] == 3 << 20
        assert out["error_origin"] == "alice"
    assert bob["received"]["alice"] == 3 and alice["received"]["bob"] == 1  # a, big and the error; b


# -- leaving last ----------------------------------------------------------------

def leave_last(party, addresses, shared):
    import json
    import os
    from pathlib import Path

    shared = Path(shared)
    if party == "carol":
        os.environ["FED_TIMELINE_DIR"] = str(shared)  # fed.shutdown writes the send events there
    join(party, addresses)
    x = make.party("carol").remote(7)
    # carol pushes x to bob only (bob answered carol before); alice never hears from carol,
    # but alice's DONE tells carol that alice finished
    value = fed.get(identity.party("bob").remote(x))
    if party != "carol":
        leave()
        (shared / f"{party}.left").write_text("1")  # its receiver no longer listens
        return value
    deadline = time.monotonic() + 60
    while not all((shared / f"{p}.left").exists() for p in ("alice", "bob")):
        assert time.monotonic() < deadline, "alice and bob did not leave"
        time.sleep(0.05)
    started = time.monotonic()
    leave()
    took = time.monotonic() - started
    trace = json.loads((shared / "default-carol.json").read_text())
    dones = [e["args"] for e in trace["traceEvents"] if e.get("cat") == "send" and e["args"]["kind"] == "done"]
    return value, took, dones


def test_the_last_party_to_leave_does_not_retry_done_to_peers_that_left(tmp_path, placement):
    """Fails if DONE is retried to bob (answered before) or to alice (said DONE, never answered carol)."""
    run = run_parties(leave_last, ("alice", "bob", "carol"), args={"shared": str(tmp_path)}, placement=placement)
    assert run.value("alice") == run.value("bob") == 7
    value, took, dones = run.value("carol")
    assert value == 7
    # one try each: a peer that answered before and no longer does has left, and so has a peer
    # that said it finished (both used to be retried as if they had not started yet, for seconds)
    assert sorted(d["peer"] for d in dones) == ["alice", "bob"]
    assert all(d["retries"] == 0 and d["outcome"].startswith("failed") for d in dones), dones
    assert took < 30, took
