"""The driver-side proxy hosts (REP 0050, 0060) on one loop thread: delivery, failures, shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest

from fed import _api
from fed._errors import FedTransportError, translate
from fed._hosts import LocalValue, TimedOut, driver_sender
from fed._hosts import loop_thread as _loop_thread
from fed._hosts.driver_receiver import DriverReceiver
from fed._hosts.driver_sender import DriverSender
from fed._hosts.loop_thread import LoopThread
from proxy import _stream_answers, dumps
from proxy.errors import TransportError
from tests.support import free_ports, transport_config


def _value(v):
    """A LocalValue already holding ``v`` (as a small received value does)."""
    done = concurrent.futures.Future()
    done.set_result(v)
    return LocalValue(done)


def _proxy_threads():
    return [t for t in threading.enumerate() if t.name == "silofed-proxies"]


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_small_and_large_objects_arrive_and_close_leaves_no_thread(event_loop, monkeypatch):
    if event_loop == "asyncio":  # where uvloop is not installed (Windows)
        monkeypatch.setattr(_loop_thread, "uvloop", None)
    elif _loop_thread.uvloop is None:
        pytest.skip("uvloop is not installed on this platform")
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")  # as fed.init: both proxies share it (here alice's and bob's)
    assert type(thread.loop).__module__.split(".")[0] == event_loop
    bob = DriverReceiver(transport_config(addrs, "bob", connect_timeout_s=60), thread)
    bob.start(10)
    alice = DriverSender(transport_config(addrs, "alice", chunk_bytes=1 << 16), False, thread)
    try:
        big = np.arange(300_000, dtype=np.int64)  # 2.4 MB: a stream of 64 KiB chunks
        futures = [alice.send("bob", "1", "small", _value({"w": 1.5})),
                   alice.send("bob", "2", "big", _value(big))]
        (small_bytes, small_error), (big_bytes, big_error) = [f.result(30) for f in futures]
        assert not small_error and not big_error
        assert 0 < small_bytes < 1000 and big_bytes >= big.nbytes
        assert bob.wait([bob.recv("alice", "1", "small")], 30) == [{"w": 1.5}]
        assert bob.stats().result(10)["from"]["alice"]["received"] == 2
        sent = alice.stats().result(10)["bob"]
        assert sent["sent"] == 2 and sent["failed"] == 0 and sent["sent_bytes"] > big.nbytes
        assert alice.ping("bob").result(10) is None
    finally:
        alice.close(5)
        bob.close(5)
        thread.stop(5)
    assert _proxy_threads() == []


def test_closing_the_sender_leaves_the_receivers_work_alone():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    bob = DriverReceiver(transport_config(addrs, "bob", connect_timeout_s=60), thread)
    bob.start(10)
    alice = DriverSender(transport_config(addrs, "alice"), False, thread)
    late = DriverSender(transport_config(addrs, "alice"), False, thread)
    try:
        waiting = bob.recv("alice", "9", "late_value")  # posted before the sender closes
        stuck = alice.send("bob", "1", "stuck", LocalValue(concurrent.futures.Future()))  # never computed
        alice.close(5)
        assert stuck.cancelled() or isinstance(stuck.exception(5), asyncio.CancelledError)
        assert not waiting.arrival.done()
        late.send("bob", "9", "late_value", _value(41)).result(30)
        assert bob.wait([waiting], 30) == [41]
    finally:
        late.close(5)
        bob.close(5)
        thread.stop(5)


def test_a_send_to_a_silent_peer_fails_with_a_transport_error_naming_it():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    alice = DriverSender(transport_config(addrs, "alice", connect_timeout_s=0.3), False, thread)
    try:
        future = alice.send("bob", "7", "train_step", _value(1))
        with pytest.raises(TransportError) as info:
            future.result(30)
        error = translate(info.value)
        assert isinstance(error, FedTransportError) and error.peer == "bob" and error.key == "7"
        assert "'bob'" in str(error) and addrs["bob"] in str(error)
        assert alice.stats().result(10)["bob"]["failed"] == 1
        with pytest.raises(TransportError, match="'nobody' is not a party of job 'job'"):
            alice.send("nobody", "8", "train_step", _value(1)).result(10)
    finally:
        alice.close(5)
        thread.stop(5)


def test_closing_the_receiver_fails_a_pending_receive_and_the_loop_stops():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    bob = DriverReceiver(transport_config(addrs, "bob", connect_timeout_s=60), thread)
    bob.start(10)
    waiting = bob.recv("alice", "1", "never_sent")
    bob.close(5)
    with pytest.raises(TransportError, match="the receiver proxy was stopped"):
        bob.wait([waiting], 5)
    thread.stop(5)
    assert _proxy_threads() == []


def test_a_fetched_value_is_sent_serialized_and_send_fetched_returns_once_it_is_handed_to_grpc(monkeypatch):
    monkeypatch.setattr(_stream_answers, "BATCH_DELAY_S", 5.0)  # bob answers 5 s after delivery (or at close)
    monkeypatch.setattr(driver_sender, "ISSUE_WAIT_S", 30.0)  # returns on the write, not on this bound
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    bob = DriverReceiver(transport_config(addrs, "bob", connect_timeout_s=60), thread)
    bob.start(10)
    alice = DriverSender(transport_config(addrs, "alice"), False, thread)
    try:
        never = LocalValue(concurrent.futures.Future())  # the sender must not read the value again
        weights = {"w": [2.0]}
        started = time.monotonic()
        [sent] = alice.send_fetched(["bob"], "1", "weights", never, weights)
        assert time.monotonic() - started < 10  # the write was handed to gRPC: no wait for the 30 s bound
        weights["w"].append(3.0)  # the program changes the value once fed.get returned it
        assert bob.wait([bob.recv("alice", "1", "weights")], 10) == [{"w": [2.0]}]
        assert not sent.done()  # written and delivered, not yet answered
        started = time.monotonic()
        [failed] = alice.send_fetched(["nobody"], "2", "weights", never, 1)
        assert time.monotonic() - started < 10  # a push failing before any write releases the wait too
        with pytest.raises(TransportError):
            failed.result(10)
    finally:
        bob.close(5)  # writes the answers it holds
        assert sent.result(10)[0] > 0
        alice.close(5)
        thread.stop(5)


def test_the_wait_for_issued_sends_is_bounded():
    never = [threading.Event(), threading.Event()]
    started = time.monotonic()
    driver_sender.wait_until_issued(never)
    assert time.monotonic() - started >= driver_sender.ISSUE_WAIT_S  # and returned: a send that never starts


class _RecordingSender:
    def __init__(self):
        self.sent, self.fetched = [], []

    def _done(self):
        future = concurrent.futures.Future()
        future.set_result((1, False))
        return future

    def send(self, dst, key, producer, value):
        self.sent.append(dst)
        return self._done()

    def send_fetched(self, dsts, key, producer, value, fetched):
        self.fetched.append((list(dsts), fetched))
        return [self._done() for _ in dsts]


class _Receiver:
    def wait(self, values, timeout):
        from fed._hosts.value import wait_for_values
        return wait_for_values(values, timeout)

    def peer_seen(self, peer):
        pass


def _job_with(sender):
    from fed._config import load_job_config
    from fed._hosts import Hosts
    from fed._job import Job

    config = load_job_config(party="alice", addresses={"alice": "127.0.0.1:1", "bob": "127.0.0.1:2",
                                                       "carol": "127.0.0.1:3"})
    return Job(config, Hosts(sender, _Receiver(), None), False, track_send=lambda send: None)


def test_fed_get_of_a_lone_object_owned_here_sends_the_fetched_value_to_the_peers_not_sent_it_before(monkeypatch):
    from fed._object import FedObject

    sender = _RecordingSender()
    job = _job_with(sender)
    obj = FedObject("alice", "3", "train_step", _value({"w": 3}))
    obj._sent_to.add("bob")  # sent to bob before, as an argument of a call there
    monkeypatch.setattr(_api, "current_job", lambda: job)
    assert _api.get(obj) == {"w": 3}
    assert sender.fetched == [(["carol"], {"w": 3})] and sender.sent == []
    assert _api.get(obj) == {"w": 3}  # fetched again: sent to nobody again
    assert sender.fetched == [(["carol"], {"w": 3})]


def test_fed_get_of_several_objects_sends_those_owned_here_before_waiting(monkeypatch):
    from fed._object import FedObject

    sender = _RecordingSender()
    job = _job_with(sender)
    mine = FedObject("alice", "4", "train_step", _value(1))
    theirs = FedObject("bob", "5", "train_step", _value(2))  # as if already received
    monkeypatch.setattr(_api, "current_job", lambda: job)
    assert _api.get([mine, theirs]) == [1, 2]
    assert sorted(sender.sent) == ["bob", "carol"] and sender.fetched == []


def test_a_receive_is_resolved_within_the_delivery_and_hands_over_the_interpreter_only_to_a_program_waiting_for_it(
        monkeypatch):
    from fed._hosts import driver_receiver
    from proxy import _wire_pb2 as wire
    from proxy._receive_table import Admission, Arrival

    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    bob = DriverReceiver(transport_config(addrs, "bob"), thread)
    handed_over = []
    data, _ = dumps({"w": 1.5})

    def deliver(key, waited_on=False):
        received = bob.recv("alice", key, "train_step")
        if not waited_on:
            deliver_received(key, received)
            assert bob.wait([received], 0) == [{"w": 1.5}]
            return
        program = concurrent.futures.ThreadPoolExecutor(1)
        waiting = program.submit(bob.wait, [received], 10)  # the program blocked in fed.get
        deadline = time.monotonic() + 10
        while received.arrival not in bob._awaited and time.monotonic() < deadline:
            time.sleep(0.001)
        deliver_received(key, received)
        assert waiting.result(10) == [{"w": 1.5}]
        program.shutdown()

    def deliver_received(key, received):
        async def deliver_now():
            arrival = Arrival(wire.DATA, "train_step", len(data), [], memoryview(data))
            bob._proxy._table.deliver("alice", key, arrival, Admission.WANTED)
            return received.arrival.done()  # the calls waiting for it are submitted from here

        monkeypatch.setattr(driver_receiver, "_hand_over_interpreter",
                            lambda: handed_over.append(received.arrival.done()))
        assert thread.run(deliver_now(), "test").result(10)

    try:
        deliver("1")  # the program is not in fed.get: the loop keeps the interpreter
        assert handed_over == []
        something_else = LocalValue(concurrent.futures.Future())
        program = concurrent.futures.ThreadPoolExecutor(1)
        other = program.submit(bob.wait, [something_else], 0.5)  # the program waits in fed.get, for something else
        while something_else.arrival not in bob._awaited and not other.done():
            time.sleep(0.001)
        deliver("2")
        with pytest.raises(TimedOut):
            other.result(10)
        program.shutdown()
        assert handed_over == []
        deliver("3", waited_on=True)
        assert handed_over == [True]  # once, after the Future was resolved
        deliver("4")
        assert handed_over == [True]
        assert not bob._awaited  # nothing left marked as waited on
    finally:
        bob.close(5)
        thread.stop(5)
