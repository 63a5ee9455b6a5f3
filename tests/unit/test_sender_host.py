"""The driver-side sender host (REP 0050), without Ray: delivery, failures, shutdown."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from fed._errors import FedTransportError, translate
from fed._sender_host import DriverSender
from proxy._config import TransportConfig
from proxy._receiver import ReceiverProxy
from proxy.errors import TransportError
from tests.parties.harness import free_ports


def _cfg(addrs, party, **kw):
    return TransportConfig(job="job", party=party, listen_address=addrs[party],
                           peers={p: a for p, a in addrs.items() if p != party}, **kw)


async def _value(v):
    return v


class _LoopThread:
    """An event loop in a thread, hosting bob's receiver as the Ray actor would."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _sender_threads():
    return [t for t in threading.enumerate() if t.name == "silofed-sender"]


def test_small_and_large_objects_arrive_and_close_leaves_no_thread():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    host = _LoopThread()
    bob = ReceiverProxy(_cfg(addrs, "bob", connect_timeout_s=60))
    host.run(bob.start())
    alice = DriverSender(_cfg(addrs, "alice", chunk_bytes=1 << 16), False)
    try:
        big = np.arange(300_000, dtype=np.int64)  # 2.4 MB: a stream of 64 KiB chunks
        futures = [alice.send("bob", "1", "small", _value({"w": 1.5})),
                   alice.send("bob", "2", "big", _value(big))]
        (small_bytes, small_error), (big_bytes, big_error) = [f.result(30) for f in futures]
        assert not small_error and not big_error
        assert 0 < small_bytes < 1000 and big_bytes >= big.nbytes
        assert host.run(bob.recv("alice", "1", "small")) == {"w": 1.5}
        np.testing.assert_array_equal(host.run(bob.recv("alice", "2", "big")), big)
        sent = alice.stats().result(10)["bob"]
        assert sent["sent"] == 2 and sent["failed"] == 0 and sent["sent_bytes"] > big.nbytes
        assert alice.ping("bob").result(10) is None
    finally:
        alice.close(5)
        host.run(bob.stop())
        host.close()
    assert _sender_threads() == []


def test_a_send_to_a_silent_peer_fails_with_a_transport_error_naming_it():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    alice = DriverSender(_cfg(addrs, "alice", connect_timeout_s=0.3), False)
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


def test_close_cancels_a_send_that_waits_forever():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    alice = DriverSender(_cfg(addrs, "alice"), False)
    never = asyncio.Event()
    future = alice.send("bob", "1", "stuck", never.wait())  # the producer never finishes
    alice.close(5)
    assert future.cancelled() or isinstance(future.exception(5), asyncio.CancelledError)
    assert _sender_threads() == []
