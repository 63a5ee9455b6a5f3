"""LocalValue and wait_for_values (fed._hosts.value), and how fed.get reports what the wait raised."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import numpy as np
import pytest

import fed
from fed import _api
from fed._hosts import LocalValue, ReceiveCancelled, TimedOut, driver_sender
from fed._hosts.value import wait_for_values
from fed._object import FedObject
from proxy._serialization import loads

Future = concurrent.futures.Future


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _failed(error: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(error)
    return future


def test_a_single_value_times_out_naming_it_or_raises_what_its_receive_holds():
    with pytest.raises(TimedOut) as info:
        wait_for_values([LocalValue(_done(1)), LocalValue(Future())], 0.05)
    assert info.value.missing == [1]
    own_timeout = fed.FedTimeoutError("the receive's own timeout")  # a TimeoutError, but not the wait's
    with pytest.raises(fed.FedTimeoutError, match="the receive's own timeout"):
        wait_for_values([LocalValue(_failed(own_timeout))], 5)
    assert wait_for_values([LocalValue(_done({"w": 1}))], 0.05) == [{"w": 1}]


def test_a_failure_ends_the_wait_for_several_values_at_once():
    never = LocalValue(Future())
    started = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        wait_for_values([never, LocalValue(_failed(ValueError("boom")))], 30)
    assert time.monotonic() - started < 20  # not the 30 s timeout


def test_a_cancelled_receive_is_reported_with_its_index():
    cancelled: Future = Future()
    cancelled.cancel()
    with pytest.raises(ReceiveCancelled) as info:
        wait_for_values([LocalValue(_done(0)), LocalValue(cancelled)], 1)
    assert info.value.index == 1


def test_for_ray_gives_what_a_call_takes_once_the_value_is_there():
    later: Future = Future()
    value = LocalValue(later)
    assert value.arrival is later
    threading.Timer(0.05, later.set_result, ({"w": 2},)).start()
    assert value.for_ray() == {"w": 2}  # blocks until it arrived


class _Receiver:
    def __init__(self, raises: BaseException):
        self.raises = raises

    def wait(self, values, timeout):
        raise self.raises


class _Job:
    """What fed.get uses of a Job, for an object from bob."""

    def __init__(self, raises: BaseException):
        from fed._config import load_job_config
        from proxy import EventLog

        self.config = load_job_config(party="alice", addresses={"alice": "127.0.0.1:1", "bob": "127.0.0.1:2"})
        self.party = "alice"
        self.receiver = _Receiver(raises)
        self.gets = EventLog()
        self.failures: list[BaseException] = []

    def local_value(self, obj):
        return LocalValue(Future())

    def note_failure(self, failure):
        self.failures.append(failure)


@pytest.mark.parametrize("raised, error, message", [
    (TimedOut([0]), fed.FedTimeoutError, r"timed out after 0.5 s .* 7 produced by 'slow' at party 'bob'"),
    (ReceiveCancelled(0), fed.FedError, r"fed.shutdown\(\) ran while fed.get waited for object 7 .*'slow'.*'bob'"),
])
def test_fed_get_reports_what_the_wait_raised_as_a_fed_error_naming_the_object(monkeypatch, raised, error, message):
    job = _Job(raised)
    monkeypatch.setattr(_api, "current_job", lambda: job)
    with pytest.raises(error, match=message):
        fed.get(FedObject("bob", "7", "slow"), timeout=0.5)
    assert isinstance(job.failures[0], error)


def test_a_fetched_value_is_serialized_before_the_program_can_change_it():
    weights = {"w": np.arange(4.0), "step": [1]}
    data, buffers = driver_sender._pickled(weights)
    weights["w"] += 10  # the program updates its copy right after fed.get
    weights["step"].append(2)
    sent = loads(data, buffers)
    assert sent["w"].tolist() == [0.0, 1.0, 2.0, 3.0] and sent["step"] == [1]

    frozen = np.arange(1 << 16, dtype=np.uint8)
    frozen.flags.writeable = False  # as a large value comes from the object store
    _, (view,) = driver_sender._pickled(frozen)
    assert np.shares_memory(np.frombuffer(view, np.uint8), frozen)  # not copied

    assert driver_sender._pickled(threading.Lock()) is None  # unpicklable: the send reports why itself
