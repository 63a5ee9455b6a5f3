"""Small messages on one long-lived PushStream per peer (REP 0070), in-process (no Ray)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc
import pytest

from proxy import _wire_pb2 as wire
from proxy._peer_stream import PeerStream
from proxy._receiver import ReceiverProxy
from proxy._sender import SenderProxy
from proxy.errors import TransportError
from tests.support import (
    receiver_and_raw_stream,
    receiver_and_sender,
    small_message,
    transport_config,
    two_addresses,
)


async def _value(v):
    return v


def _stream_broke() -> grpc.aio.AioRpcError:
    """What gRPC raises for a write on a stream the peer's server dropped."""
    return grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                "Internal error from Core")


class _RestartablePeers:
    """alice's receiver, which a test may restart on the same address, and bob's sender."""

    def __init__(self) -> None:
        self.addrs = two_addresses()
        self.alice = ReceiverProxy(transport_config(self.addrs, "alice"))
        self.bob = SenderProxy(transport_config(self.addrs, "bob", connect_timeout_s=20))

    async def restart_alice(self, grace_s: float) -> None:
        """Stop alice's receiver and start a new one on the same address."""
        await self.alice.stop(grace_s=grace_s)
        self.alice = ReceiverProxy(transport_config(self.addrs, "alice"))
        await self.alice.start()


@contextlib.asynccontextmanager
async def _restartablereceiver_and_sender():
    peers = _RestartablePeers()
    await peers.alice.start()
    try:
        yield peers
    finally:
        await peers.bob.stop()
        await peers.alice.stop()


def test_many_small_objects_share_one_stream_and_all_arrive():
    async def main():
        async with receiver_and_sender() as (alice, bob):
            receives = [asyncio.ensure_future(alice.recv("bob", str(i), "f")) for i in range(0, 200, 2)]
            sends = [bob.send("alice", str(i), "f", [_value({"i": i})]) for i in range(200)]
            await asyncio.gather(*sends)
            assert [await r for r in receives] == [{"i": i} for i in range(0, 200, 2)]
            assert len(alice._streams) == 1  # one call carried all 200
            sent = (await bob.stats())["alice"]
            assert sent["sent"] == 200 and sent["duplicates"] == 0 and sent["failed"] == 0
            assert alice._table.remembered() == 0  # numbered by the sender: O(1) memory (reps/0130)

    asyncio.run(main())


def test_messages_pushed_together_are_written_in_order_by_the_stream_s_one_writer():
    """No task per message (REP 0150): 100 sends started at once create their own 100
    tasks and a constant few more, and arrive in the order they were pushed."""
    async def main():
        async with receiver_and_sender() as (alice, bob):
            await bob.send("alice", "warm", "f", [_value(0)])  # the stream and its reader and writer are open
            created = []
            loop = asyncio.get_running_loop()

            def counting_factory(loop, coro, **kw):
                created.append(coro)
                return asyncio.Task(coro, loop=loop, **kw)

            loop.set_task_factory(counting_factory)
            try:
                await asyncio.gather(*(bob.send("alice", str(i), "f", [_value(i)]) for i in range(100)))
            finally:
                loop.set_task_factory(None)
            assert len(created) <= 100 + 10  # a task per message would make it 200
            events = (await alice.timeline())["events"]
            arrived = [e[4] for e in events if e[0] == "arrive" and e[4] != "warm"]
            assert arrived == [str(i) for i in range(100)]

    asyncio.run(main())


def test_a_refused_message_is_answered_and_the_stream_goes_on():
    async def main():
        async with receiver_and_raw_stream() as (alice, call):
            await call.write(small_message("1", dst="carol"))  # not for alice: refused
            await call.write(small_message("2"))
            answers = {}
            for _ in range(2):
                ack = await call.read()
                answers[ack.id] = ack
            await call.done_writing()
            assert answers[1].status == wire.REFUSED and answers[1].reason == "wrong_destination"
            assert answers[1].code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "'carol'" in answers[1].detail
            assert answers[2].status == wire.OK
            assert await alice.recv("bob", "2", "f") is None
            assert (await alice.stats())["rejected"] == {"wrong_destination": 1}

    asyncio.run(main())


def test_a_message_waiting_for_room_does_not_hold_up_the_ones_behind_it():
    async def main():
        async with receiver_and_sender(alice={"unsolicited_budget_bytes": 1024}) as (alice, bob):
            await bob.send("alice", "1", "f", [_value(b"x" * 4000)])  # fills the budget, unsolicited
            held = asyncio.ensure_future(bob.send("alice", "2", "f", [_value(b"y" * 4000)]))
            await asyncio.sleep(0.2)  # "2" is now held by the receiver, on the same stream
            assert not held.done()
            wanted = asyncio.ensure_future(alice.recv("bob", "3", "f"))
            started = time.monotonic()
            await bob.send("alice", "3", "f", [_value("posted")])
            assert await wanted == "posted"
            assert time.monotonic() - started < 0.5  # not behind "2", held for up to 1 s
            assert not held.done()
            assert await alice.recv("bob", "1", "f") == b"x" * 4000  # frees room: "2" gets in
            await asyncio.wait_for(held, 10)
            assert await alice.recv("bob", "2", "f") == b"y" * 4000
            assert (await alice.stats())["peak_buffered_bytes"] <= 1024 + 4100

    asyncio.run(main())


def test_a_receiver_restart_breaks_the_stream_and_the_next_send_opens_a_new_one():
    async def main():
        async with _restartablereceiver_and_sender() as peers:
            await peers.bob.send("alice", "1", "f", [_value(1)])
            started = time.monotonic()
            await peers.restart_alice(grace_s=5)
            assert time.monotonic() - started < 2  # the open stream does not hold the stop for its grace
            await peers.bob.send("alice", "2", "f", [_value(2)])
            assert await peers.alice.recv("bob", "2", "f") == 2

    asyncio.run(main())


def test_a_receiver_stopping_ends_an_open_stream_cleanly():
    async def main():
        async with receiver_and_raw_stream() as (alice, call):
            await call.write(small_message("1"))
            assert (await call.read()).status == wire.OK
            await alice.stop(grace_s=5)
            # OK, so the sender retries elsewhere; not UNKNOWN (an error it would take as final)
            assert await asyncio.wait_for(call.code(), 2) == grpc.StatusCode.OK

    asyncio.run(main())


def test_a_message_for_a_peer_gone_for_good_fails_with_a_transport_error():
    async def main():
        async with receiver_and_sender(bob={"connect_timeout_s": 0.5}) as (alice, bob):
            await bob.send("alice", "1", "f", [_value(1)])
            await alice.stop()
            with pytest.raises(TransportError, match="'alice'"):
                await bob.send("alice", "2", "f", [_value(2)])

    asyncio.run(main())


def test_cancelling_one_send_leaves_the_stream_and_the_messages_behind_it_alone():
    async def main():
        async with receiver_and_sender(bob={"connect_timeout_s": 10}) as (alice, bob):
            await bob.send("alice", "1", "f", [_value(1)])  # the stream is open; alice has answered bob
            dropped = asyncio.ensure_future(bob.send("alice", "2", "f", [_value(2)]))
            done = asyncio.ensure_future(bob.send_control("alice", "done"))
            await asyncio.sleep(0)  # "2" is being written, DONE waits behind it
            dropped.cancel()
            await asyncio.wait_for(done, 10)  # not failed with the stream (a DONE is not retried)
            assert (await alice.wait_peers_finished(1))["bob"] == "done"
            assert (await bob.stats())["alice"]["retries"] == 0

    asyncio.run(main())


def test_a_peer_cannot_make_the_receiver_hold_more_than_an_honest_sender_could():
    async def main():
        async with receiver_and_raw_stream(unsolicited_budget_bytes=1024) as (alice, call):
            await call.write(small_message("1", payload=b"\x80\x05N." + b"." * 4000))  # fills the budget
            assert (await call.read()).status == wire.OK
            await call.write(small_message("2", payload=b"\x80\x05N." + b"." * (100 << 10)))  # over 64 KiB
            refused = await call.read()
            assert refused.status == wire.REFUSED and refused.reason == "malformed" and "Push stream" in refused.detail
            for key in range(3, 303):  # 300 unsolicited messages while the budget is full
                await call.write(small_message(str(key), payload=b"\x80\x05N." + b"." * 1000))
            started = time.monotonic()
            busy = [await call.read() for _ in range(300 - 256)]  # the ones beyond what it may hold
            assert time.monotonic() - started < 0.5  # answered at once, not after the 1 s hold
            assert all(a.status == wire.BUSY for a in busy) and sorted(a.id for a in busy) == list(range(259, 303))
            call.cancel()

    asyncio.run(main())


def test_sends_running_when_the_sender_stops_and_later_ones_fail_with_a_transport_error():
    async def main():
        async with receiver_and_sender(alice={"unsolicited_budget_bytes": 1024},
                                  bob={"connect_timeout_s": 10}) as (alice, bob):
            await bob.send("alice", "1", "f", [_value(b"x" * 4000)])  # fills alice's budget
            held = asyncio.ensure_future(bob.send("alice", "2", "f", [_value(b"y" * 4000)]))
            await asyncio.sleep(0.2)
            await bob.stop()
            with pytest.raises(TransportError, match="the sender proxy was stopped"):
                await asyncio.wait_for(held, 5)
            with pytest.raises(TransportError, match="the sender proxy was stopped"):
                await bob.send("alice", "3", "f", [_value(3)])

    asyncio.run(main())


@pytest.mark.parametrize("payload_bytes", [100, 1 << 20], ids=["stream", "push"])
def test_a_send_whose_stream_broke_under_its_write_is_sent_again(monkeypatch, payload_bytes):
    """gRPC fails a write on a stream the peer's server dropped with its own "INTERNAL: Internal
    error from Core" (no reason from the receiver): the sender tries again, the receiver keeps one copy."""
    import proxy._sender as sender_module
    broke = _stream_broke()
    real_push, real_stream = PeerStream.push, sender_module._stream
    failed = []

    async def push_then_break(self, small, on_write=None):
        ack = await real_push(self, small, on_write)
        if not failed:
            failed.append(small.header.key)
            raise broke  # arrived, but the sender cannot know
        return ack

    async def stream_then_break(call, header, chunks, on_write=None):
        ack = await real_stream(call, header, chunks, on_write)
        if not failed:
            failed.append(header.key)
            raise broke
        return ack

    monkeypatch.setattr(PeerStream, "push", push_then_break)
    monkeypatch.setattr(sender_module, "_stream", stream_then_break)

    async def main():
        async with receiver_and_sender() as (alice, bob):
            await bob.send("alice", "1", "f", [_value(b"x" * payload_bytes)])
            assert await alice.recv("bob", "1", "f") == b"x" * payload_bytes
            sent = (await bob.stats())["alice"]
            assert failed == ["1"] and sent["retries"] == 1 and sent["duplicates"] == 1 and sent["failed"] == 0
            assert alice._table.remembered() == 0

    asyncio.run(main())


def test_a_refusal_is_not_mistaken_for_a_broken_stream():
    """A receiver's refusal always names its reason; INTERNAL with one is final, not retried."""
    from proxy._sender import _retryable
    from proxy._service import REASON_KEY
    refused = grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(),
                                   grpc.aio.Metadata((REASON_KEY, "malformed")), "refused")
    assert not _retryable(refused) and _retryable(_stream_broke())


def test_sends_in_flight_while_the_receiver_restarts_all_complete():
    """Writes racing with the receiver's server stopping (gRPC fails some with INTERNAL) are retried."""
    async def main():
        async with _restartablereceiver_and_sender() as peers:
            sends = [asyncio.ensure_future(peers.bob.send("alice", str(i), "f", [_value(b"x" * 50_000)]))
                     for i in range(300)]
            await peers.alice.recv("bob", "0", "f")
            await peers.restart_alice(grace_s=0)
            await asyncio.wait_for(asyncio.gather(*sends), 30)
            assert (await peers.bob.stats())["alice"]["failed"] == 0

    asyncio.run(main())


def test_a_stream_that_keeps_breaking_fails_in_the_end_saying_so(monkeypatch):
    async def always_break(self, small, on_write=None):
        raise _stream_broke()

    monkeypatch.setattr(PeerStream, "push", always_break)

    async def main():
        async with receiver_and_sender(bob={"connect_timeout_s": 0.3}) as (alice, bob):
            with pytest.raises(TransportError, match="'alice'.*INTERNAL.*connection to the peer kept breaking"):
                await bob.send("alice", "1", "f", [_value(1)])
            assert (await bob.stats())["alice"]["retries"] >= 1

    asyncio.run(main())
