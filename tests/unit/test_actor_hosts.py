"""The actor placement's sender (fed._hosts.actor), with a stand-in actor handle: sends, cancels, outcomes."""

from __future__ import annotations

import concurrent.futures

import pytest

from fed._hosts import LocalValue, actor
from fed._hosts import value as value_module

Future = concurrent.futures.Future


class _Call:
    """What ``handle.send.remote(...)`` returns: an ObjectRef-like with ``future()``."""

    def __init__(self, args: tuple):
        self.args = args
        self.outcome: Future = Future()

    def future(self) -> Future:
        return self.outcome


class _Method:
    def __init__(self) -> None:
        self.calls: list[_Call] = []

    def remote(self, *args):
        call = _Call(args)
        self.calls.append(call)
        return call


class _Handle:
    def __init__(self) -> None:
        self.send = _Method()


@pytest.fixture
def cancelled_calls(monkeypatch) -> list:
    cancelled: list = []
    monkeypatch.setattr(actor.ray, "cancel", cancelled.append)
    return cancelled


def test_a_send_resolves_as_the_actor_call_does():
    handle = _Handle()
    sent = actor.ActorSender(handle).send("bob", "3", "step", LocalValue("ref-3"))  # the ref is passed as is
    (call,) = handle.send.calls
    assert call.args == ("bob", "3", "step", ["ref-3"])
    call.outcome.set_result((12, False))
    assert sent.result(0) == (12, False)


def test_cancelling_a_send_cancels_the_actor_call(cancelled_calls):
    handle = _Handle()
    sent = actor.ActorSender(handle).send("bob", "3", "step", LocalValue("ref-3"))
    assert sent.cancel()
    (call,) = handle.send.calls
    assert cancelled_calls == [call]  # the push stops at the actor too


def test_an_outcome_arriving_after_the_send_was_cancelled_is_dropped(cancelled_calls, caplog):
    handle = _Handle()
    sent = actor.ActorSender(handle).send("bob", "3", "step", LocalValue("ref-3"))
    sent.cancel()  # as Job.drop_sends_to does for a peer that left
    (call,) = handle.send.calls
    with caplog.at_level("ERROR", logger="concurrent.futures"):
        call.outcome.set_result((12, False))  # a failing callback would be logged there (InvalidStateError)
    assert sent.cancelled()
    assert not [r for r in caplog.records if r.name == "concurrent.futures"]


def test_a_send_waiting_for_its_value_calls_the_actor_once_it_is_there_or_not_at_all_if_cancelled(
        cancelled_calls, monkeypatch):
    monkeypatch.setattr(value_module.ray, "put", lambda v: f"put({v})")  # no Ray here
    handle = _Handle()
    computed: Future = Future()
    sent = actor.ActorSender(handle).send("bob", "4", "step", LocalValue(computed))
    assert handle.send.calls == []  # the call still waits for its inputs
    computed.set_result("ref-4")
    (call,) = handle.send.calls
    assert call.args[3] == ["put(ref-4)"]
    call.outcome.set_result((1, False))
    assert sent.result(0) == (1, False)

    never: Future = Future()
    dropped = actor.ActorSender(handle).send("bob", "5", "step", LocalValue(never))
    dropped.cancel()
    never.set_result("ref-5")
    assert len(handle.send.calls) == 1 and cancelled_calls == []  # nothing reached the actor
