"""Failure semantics across parties: errors in place of data, redaction, aborts,
peer death, timeouts, divergence, exit codes and signals."""

from __future__ import annotations

import os
import signal
import time

import pytest
import ray

import fed
from tests.support import join, leave, placed, run_parties, start_ray

pytestmark = pytest.mark.parties

SECRET = "s3cr3t-patient-record-4711"


@fed.remote
def explode(x):
    raise ValueError(f"bad input {x}: {SECRET}")


@fed.remote
def plus_one(x):
    return x + 1


@fed.remote
def value(x):
    return x


@fed.remote
def slow(x, seconds):
    time.sleep(seconds)
    return x


def cascade(party, addresses, expose, rounds):
    start_ray()
    outcomes = []
    for i in range(rounds):
        fed.init(addresses=addresses, party=party, job_name=f"cascade{i}",
                 config=placed({"cross_silo_comm": {"expose_error_trace": expose}}))
        a = explode.party("alice").remote(1)
        b = plus_one.party("bob").remote(a)
        c = plus_one.party("carol").remote(b)
        try:
            fed.get(c)
        except fed.RemoteError as err:
            outcomes.append({"type": type(err).__name__, "origin": err.origin, "producer": err.producer,
                             "exc_type": err.exc_type, "text": str(err) + repr(err)})
        except ValueError as err:  # the origin sees its own exception
            outcomes.append({"type": "ValueError", "origin": party, "text": str(err)})
        fed.shutdown()
    ray.shutdown()
    return outcomes


@pytest.mark.parametrize("expose", [False, True], ids=["redacted", "exposed"])
def test_error_cascades_alice_bob_carol_naming_origin_and_redacting(expose, placement):
    rounds = 10 if not expose else 1
    run = run_parties(cascade, ("alice", "bob", "carol"), args={"expose": expose, "rounds": rounds}, timeout=180,
                      placement=placement)
    for party in ("bob", "carol"):
        outcomes = run.value(party)
        assert len(outcomes) == rounds
        for out in outcomes:
            assert out["type"] == "RemoteError"
            assert out["origin"] == "alice"
            assert out["producer"] == "explode"
            assert out["exc_type"] == "builtins.ValueError"
            assert (SECRET in out["text"]) is expose
        if not expose:
            assert SECRET not in run.parties[party].log
    # alice asked for carol's result too: the error came back naming alice as its origin
    assert [o["origin"] for o in run.value("alice")] == ["alice"] * rounds
    assert SECRET in run.parties["alice"].log  # the origin logs the full error


def peer_death(party, addresses):
    join(party, addresses, config={"cross_silo_comm": {"peer_timeout_ms": 3000}})
    x = value.party("alice").remote(1)
    y = plus_one.party("bob").remote(x)
    z = plus_one.party("carol").remote(y)
    assert fed.get(z) == 3  # the job runs, then bob dies
    if party == "bob":
        os.kill(os.getpid(), signal.SIGKILL)
    w = plus_one.party("bob").remote(z)
    began = time.monotonic()
    try:
        fed.get(w)
    except fed.PeerUnavailableError as err:
        result = {"peer": err.peer, "after": time.monotonic() - began, "text": str(err)}
    fed.shutdown()
    ray.shutdown()
    return result


def test_kill_9_bob_mid_job_alice_and_carol_raise_within_timeout(placement):
    run = run_parties(peer_death, ("alice", "bob", "carol"), expect_exit={"bob": -9}, timeout=120,
                      placement=placement)
    for party in ("alice", "carol"):
        out = run.value(party)
        assert out["peer"] == "bob", out
        assert "bob" in out["text"]
        assert out["after"] < 3 + 5, out


def slow_peer(party, addresses):
    join(party, addresses, config={"cross_silo_comm": {"peer_timeout_ms": 1500, "ping_interval_ms": 300}})
    r = slow.party("bob").remote(5, 6.0)  # four peer timeouts long
    out = fed.get(plus_one.party("alice").remote(r))
    leave()
    return out


def test_slow_task_is_not_a_dead_peer(placement):
    run = run_parties(slow_peer, ("alice", "bob"), timeout=90, placement=placement)
    assert run.value("alice") == run.value("bob") == 6


def busy_driver(party, addresses):
    join(party, addresses, config={"cross_silo_comm": {"peer_timeout_ms": 1500, "ping_interval_ms": 300}})
    first = fed.get(plus_one.party("bob").remote(value.party("alice").remote(0)))  # alice has heard from bob
    time.sleep(1.0)  # and pings flow
    if party == "bob":  # bob's driver computes in Python for four peer timeouts; its receiver shares the process
        deadline = time.monotonic() + 6.0
        spins = 0
        while time.monotonic() < deadline:
            spins += sum(i * i for i in range(1000))
    second = fed.get(plus_one.party("bob").remote(first))
    leave()
    return first, second


def test_a_driver_busy_in_python_is_not_a_dead_peer(placement):
    """The receiver answers pings from a thread of the driver (REP 0060) or from its actor: busy Python code
    in the driver must not starve it."""
    run = run_parties(busy_driver, ("alice", "bob"), timeout=90, placement=placement)
    assert run.value("alice") == run.value("bob") == (1, 2)
    assert "unreachable" not in run.parties["alice"].log


def timeout_and_divergence(party, addresses):
    join(party, addresses)
    out = {}
    never = slow.party("bob").remote(1, 30.0)
    try:
        fed.get(never, timeout=1.0)
    except fed.FedTimeoutError as err:
        out["timeout"] = str(err)
    # the parties now run different programs: alice calls value, bob calls plus_one
    diverged = (value if party == "alice" else plus_one).party("alice").remote(1)
    try:
        out["diverged_value"] = fed.get(diverged, timeout=20)
    except fed.ProgramDivergenceError as err:
        out["divergence"] = str(err)
    # bob's pending send of `never` would keep its shutdown waiting for the 30 s task
    fed.shutdown(timeout=1 if party == "bob" else 60)
    ray.shutdown()
    return out


def test_get_timeout_and_program_divergence_are_clear_errors(placement):
    run = run_parties(timeout_and_divergence, ("alice", "bob"), timeout=120, placement=placement)
    for party in ("alice", "bob"):
        text = run.value(party)["timeout"]
        assert "timed out after 1.0 s" in text and "'slow'" in text and "'bob'" in text
    div = run.value("bob")["divergence"]
    assert "'plus_one'" in div and "'value'" in div and "same program" in div
    assert run.value("alice")["diverged_value"] == 1


def exit_codes(party, addresses, fail):
    join(party, addresses, config={"cross_silo_comm": {"exit_on_failure": True}})
    a = (explode if fail else value).party("alice").remote(1)
    b = plus_one.party("bob").remote(a)
    c = value.party("carol").remote(7)  # carol never touches the failing branch
    try:
        fed.get([c])
        if party != "carol":
            fed.get(b)
    except fed.FedError:
        pass  # swallowed on purpose: exit_on_failure must still exit non-zero
    except ValueError:
        pass
    fed.shutdown()
    ray.shutdown()
    return "finished"


def test_exit_codes_with_exit_on_failure(placement):
    ok = run_parties(exit_codes, ("alice", "bob", "carol"), args={"fail": False}, timeout=120, placement=placement)
    assert all(r.returncode == 0 for r in ok.parties.values())
    bad = run_parties(exit_codes, ("alice", "bob", "carol"), args={"fail": True}, timeout=120, placement=placement,
                      expect_exit={"alice": 1, "bob": 1, "carol": 1})
    assert "exiting with status 1" in bad.parties["carol"].log


def interrupted(party, addresses, marker):
    handled = []
    join(party, addresses, failure_handler=handled.append)
    fed.get(value.party("bob").remote(0))  # both parties are up before alice is interrupted
    x = slow.party("bob").remote(1, 60.0)
    r = plus_one.party("alice").remote(x)  # alice waits for bob's x, bob for alice's r
    if party == "alice":
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(marker + ".tmp", marker)
        try:
            fed.get(r)
        except KeyboardInterrupt:
            deadline = time.monotonic() + 10  # the handler runs on the error-queue thread
            while not handled and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(handled) == 1
            time.sleep(120)  # a hung shutdown: the second Ctrl-C must end it at once
    try:
        fed.get(r, timeout=60)
    except fed.PeerUnavailableError as err:
        return {"peer": err.peer, "text": str(err)}


def test_ctrl_c_aborts_the_job_and_a_second_one_exits_at_once(tmp_path, placement):
    import threading

    marker = tmp_path / "alice-ready"

    def interrupter():
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGINT)
        time.sleep(3.0)
        os.kill(pid, signal.SIGINT)

    t = threading.Thread(target=interrupter, daemon=True)
    t.start()
    run = run_parties(interrupted, ("alice", "bob"), args={"marker": str(marker)}, timeout=120, placement=placement,
                      expect_exit={"alice": 128 + signal.SIGINT})
    out = run.value("bob")
    assert out["peer"] == "alice" and "SIGINT" in out["text"]
    # bob's x (still computing) was for alice, who left: bob drops it instead of waiting for it
    # (it aborted; or, when alice aborted before bob listened, it became unreachable)
    assert "dropping 1 pending send(s) to party alice: it left the job (" in run.parties["bob"].log


@fed.remote
def blob(n):
    return b"x" * n


def refused_send(party, addresses):
    seen = []
    limit = {"alice": 1 << 30, "bob": 1 << 20}[party]
    join(party, addresses, failure_handler=seen.append,
         config={"cross_silo_comm": {"messages_max_size_in_bytes": limit}})
    big = blob.party("alice").remote(4 << 20)
    used = plus_one.party("bob").remote(value.party("bob").remote(1))
    out = {"small": fed.get(used)}
    try:
        fed.get(value.party("bob").remote(big), timeout=60)
    except fed.FedError as err:
        out["error"] = f"{type(err).__name__}: {err}"
    if party == "alice":
        out["handler"] = [f"{type(e).__name__}: {e}" for e in seen]
    fed.shutdown()
    ray.shutdown()
    return out


def test_a_refused_message_surfaces_at_sender_and_receiver(placement):
    run = run_parties(refused_send, ("alice", "bob"), timeout=120, placement=placement)
    alice, bob = run.value("alice"), run.value("bob")
    assert alice["small"] == bob["small"] == 2
    # the sender's failure handler got the transport error, with the receiver's reason
    assert len(alice["handler"]) == 1
    assert "FedTransportError" in alice["handler"][0] and "RESOURCE_EXHAUSTED" in alice["handler"][0]
    assert "over the limit" in alice["handler"][0]
    # the party waiting for the data learns who failed and why
    assert bob["error"].startswith("PeerUnavailableError") and "'alice'" in bob["error"]
    assert "over the limit" in bob["error"]
