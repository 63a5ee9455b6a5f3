"""The driver-side proxy hosts (REP 0050, 0060) on one loop thread: delivery, failures, shutdown."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
import time

import numpy as np
import pytest

from fed import _api
from fed._hosts import loop_thread as _loop_thread
from fed._errors import FedTransportError, translate
from fed._hosts.loop_thread import LoopThread
from fed._hosts.receiver import DriverReceiver
from fed._hosts.sender import DriverSender
from proxy import _stream_answers, dumps
from proxy._config import TransportConfig
from proxy.errors import TransportError
from tests.support import free_ports


def _cfg(addrs, party, **kw):
    return TransportConfig(job="job", party=party, listen_address=addrs[party],
                           peers={p: a for p, a in addrs.items() if p != party}, **kw)


async def _value(v):
    return v


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
    bob = DriverReceiver(_cfg(addrs, "bob", connect_timeout_s=60), thread)
    bob.start()
    alice = DriverSender(_cfg(addrs, "alice", chunk_bytes=1 << 16), False, thread)
    try:
        big = np.arange(300_000, dtype=np.int64)  # 2.4 MB: a stream of 64 KiB chunks
        futures = [alice.send("bob", "1", "small", _value({"w": 1.5})),
                   alice.send("bob", "2", "big", _value(big))]
        (small_bytes, small_error), (big_bytes, big_error) = [f.result(30) for f in futures]
        assert not small_error and not big_error
        assert 0 < small_bytes < 1000 and big_bytes >= big.nbytes
        assert bob.recv("alice", "1", "small").result(30) == {"w": 1.5}
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
    bob = DriverReceiver(_cfg(addrs, "bob", connect_timeout_s=60), thread)
    bob.start()
    alice = DriverSender(_cfg(addrs, "alice"), False, thread)
    late = DriverSender(_cfg(addrs, "alice"), False, thread)
    try:
        waiting = bob.recv("alice", "9", "late_value")  # posted before the sender closes
        stuck = alice.send("bob", "1", "stuck", asyncio.Event().wait())
        alice.close(5)
        assert stuck.cancelled() or isinstance(stuck.exception(5), asyncio.CancelledError)
        assert not waiting.done()
        late.send("bob", "9", "late_value", _value(41)).result(30)
        assert waiting.result(30) == 41
    finally:
        late.close(5)
        bob.close(5)
        thread.stop(5)


def test_a_send_to_a_silent_peer_fails_with_a_transport_error_naming_it():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    alice = DriverSender(_cfg(addrs, "alice", connect_timeout_s=0.3), False, thread)
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
    bob = DriverReceiver(_cfg(addrs, "bob", connect_timeout_s=60), thread)
    bob.start()
    waiting = bob.recv("alice", "1", "never_sent")
    bob.close(5)
    with pytest.raises(TransportError, match="the receiver proxy was stopped"):
        waiting.result(5)
    thread.stop(5)
    assert _proxy_threads() == []


def test_a_pickled_send_reports_its_write_handed_to_grpc_before_the_answer(monkeypatch):
    monkeypatch.setattr(_stream_answers, "BATCH_DELAY_S", 5.0)  # bob answers 5 s after delivery (or at close)
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    bob = DriverReceiver(_cfg(addrs, "bob", connect_timeout_s=60), thread)
    bob.start()
    alice = DriverSender(_cfg(addrs, "alice"), False, thread)
    try:
        issued = threading.Event()
        sent = alice.send("bob", "1", "weights", None, dumps({"w": 2}), issued)
        assert issued.wait(10)
        assert bob.recv("alice", "1", "weights").result(10) == {"w": 2}
        assert not sent.done()  # written and delivered, not yet answered
        refused = threading.Event()
        failed = alice.send("nobody", "2", "weights", None, dumps(1), refused)
        with pytest.raises(TransportError):
            failed.result(10)
        assert refused.wait(1)  # a send failing before any write releases the waiter too
    finally:
        bob.close(5)  # writes the answers it holds
        assert sent.result(10)[0] > 0
        alice.close(5)
        thread.stop(5)


def test_fed_get_waits_for_its_sends_to_be_issued_at_most_a_bounded_time():
    never = [threading.Event(), threading.Event()]
    started = time.monotonic()
    _api._wait_until_issued(never)
    waited = time.monotonic() - started
    assert _api.ISSUE_WAIT_S <= waited < _api.ISSUE_WAIT_S + 0.5  # a send that never starts holds no one up
    done = threading.Event()
    done.set()
    started = time.monotonic()
    _api._wait_until_issued([done])
    assert time.monotonic() - started < _api.ISSUE_WAIT_S


class _JobSendingOwnValue:
    """The parts of fed._job.Job that fed.get uses for a value owned here (no Ray: the value is a done Future)."""

    def __init__(self, value):
        from fed._config import load_job_config
        from fed._object import FedObject
        from proxy._stats import EventLog

        self.config = load_job_config(party="alice", addresses={"alice": "127.0.0.1:1", "bob": "127.0.0.1:2",
                                                                "carol": "127.0.0.1:3"})
        self.party, self.peers = "alice", ["bob", "carol"]
        self.sender = DriverSender.__new__(DriverSender)  # only its takes_pickled is read
        self.receiver = DriverReceiver.__new__(DriverReceiver)  # only its program_waiting is used
        self.receiver._awaited, self.receiver._counting = collections.Counter(), threading.Lock()
        self.gets = EventLog()
        done = concurrent.futures.Future()
        done.set_result(value)
        self.obj = FedObject("alice", "3", "train_step", done)
        self.pushed = {}

    def local_ref(self, obj):
        return obj._ref

    def push(self, obj, dst, pickled=None, issued=None):
        self.pushed[dst] = (pickled, issued)
        if dst in obj._sent_to:  # as Job.push: at most once per destination
            return
        obj._sent_to.add(dst)
        issued.set()  # as the proxy thread does once the write is handed to gRPC


def test_fed_get_waits_only_for_sends_it_starts(monkeypatch):
    job = _JobSendingOwnValue({"w": 3})
    job.obj._sent_to.add("bob")  # sent to bob before, as an argument of a call there
    monkeypatch.setattr(_api, "current_job", lambda: job)
    assert _api.get(job.obj) == {"w": 3}
    assert job.pushed["bob"][1] is None  # bob is not sent it again: no event that nobody would set
    pickled, issued = job.pushed["carol"]
    assert pickled is not None and issued.is_set()


def test_a_receive_is_resolved_within_the_delivery_and_hands_over_the_interpreter_only_to_a_program_waiting_for_it(
        monkeypatch):
    from fed._hosts import receiver as _receiver_host
    from proxy import _wire_pb2 as wire
    from proxy._receive_table import Admission, Arrival

    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    bob = DriverReceiver(_cfg(addrs, "bob"), thread)
    handed_over = []
    data, _ = dumps({"w": 1.5})

    def deliver(key, waited_on=False):
        received = bob.recv("alice", key, "train_step")
        waiting = bob.program_waiting([received]) if waited_on else contextlib.nullcontext()
        with waiting:
            deliver_received(key, received)

    def deliver_received(key, received):
        async def deliver_now():
            arrival = Arrival(wire.DATA, "train_step", len(data), [], memoryview(data))
            bob._proxy._table.deliver("alice", key, arrival, Admission.WANTED)
            return received.done()  # the calls waiting for it are submitted from here

        monkeypatch.setattr(_receiver_host, "_hand_over_interpreter", lambda: handed_over.append(received.done()))
        assert thread.run(deliver_now(), "test").result(10)
        assert received.result(0) == {"w": 1.5}

    try:
        deliver("1")  # the program is not in fed.get: the loop keeps the interpreter
        assert handed_over == []
        with bob.program_waiting([concurrent.futures.Future()]):
            deliver("2")  # the program waits in fed.get, but for something else
        assert handed_over == []
        deliver("3", waited_on=True)
        assert handed_over == [True]  # once, after the Future was resolved
        deliver("4")
        assert handed_over == [True]
        assert not bob._awaited  # nothing left marked as waited on
    finally:
        bob.close(5)
        thread.stop(5)
