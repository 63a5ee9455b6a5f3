"""Batched OK answers on a PushStream (REP 0080): proxy._stream_answers alone, then over gRPC."""

from __future__ import annotations

import asyncio

from proxy import _wire_pb2 as wire
from proxy._stream_answers import StreamAnswers
from tests.support import receiver_and_raw_stream, receiver_and_sender, small_message


def _ok(msg_id: int) -> wire.Ack:
    return wire.Ack(status=wire.OK, id=msg_id)


class _Written(list):
    async def __call__(self, ack: wire.Ack) -> None:
        self.append((ack.status, [ack.id, *ack.more_ids]))


def test_ok_answers_wait_and_are_written_as_one_ack():
    async def main():
        written = _Written()
        answers = StreamAnswers(written, delay_s=0.05)
        for i in (1, 2, 3):
            await answers.answer(_ok(i))
        assert written == []
        await asyncio.sleep(0.1)
        assert written == [(wire.OK, [1, 2, 3])]

    asyncio.run(main())


def test_other_answers_go_at_once_after_the_gathered_ones():
    async def main():
        written = _Written()
        answers = StreamAnswers(written, delay_s=60)
        await answers.answer(_ok(1))
        await answers.answer(wire.Ack(status=wire.BUSY, id=2))
        await answers.answer(_ok(3), at_once=True)
        assert written == [(wire.OK, [1]), (wire.BUSY, [2]), (wire.OK, [3])]
        answers.close()

    asyncio.run(main())


def test_a_full_batch_is_written_without_waiting():
    async def main():
        written = _Written()
        answers = StreamAnswers(written, delay_s=60, batch_max=4)
        for i in range(1, 10):
            await answers.answer(_ok(i))
        assert written == [(wire.OK, [1, 2, 3, 4]), (wire.OK, [5, 6, 7, 8])]
        await answers.flush()
        assert written[-1] == (wire.OK, [9])
        answers.close()

    asyncio.run(main())


def test_closed_answers_write_nothing_more():
    async def main():
        written = _Written()
        answers = StreamAnswers(written, delay_s=0.02)
        await answers.answer(_ok(1))
        answers.close()
        await asyncio.sleep(0.1)
        assert written == []

    asyncio.run(main())


def test_the_receiver_answers_many_messages_with_few_acks():
    async def main():
        async with receiver_and_raw_stream() as (alice, call):
            for i in range(1, 31):
                await call.write(small_message(str(i)))
            answered = []
            acks = 0
            while len(answered) < 30:
                ack = await asyncio.wait_for(call.read(), 10)
                acks += 1
                assert ack.status == wire.OK
                answered += [ack.id, *ack.more_ids]
            await call.done_writing()
            assert sorted(answered) == list(range(1, 31))
            assert acks < 30
            assert [await alice.recv("bob", str(i), "f") for i in range(1, 31)] == [None] * 30

    asyncio.run(main())


def test_a_control_message_is_answered_at_once(monkeypatch):
    monkeypatch.setattr("proxy._stream_answers.BATCH_DELAY_S", 60.0)

    async def main():
        async with receiver_and_sender() as (alice, bob):
            await asyncio.wait_for(bob.send_control("alice", "done"), 5)  # not held for 60 s

    asyncio.run(main())


def test_a_stopping_receiver_writes_the_answers_it_still_holds(monkeypatch):
    monkeypatch.setattr("proxy._stream_answers.BATCH_DELAY_S", 60.0)

    async def main():
        async with receiver_and_sender() as (alice, bob):
            data = asyncio.ensure_future(bob.send("alice", "1", "f", [_value("v")]))
            await asyncio.sleep(0.3)
            assert not data.done()  # delivered; its answer waits in the batch
            await alice.stop()
            await asyncio.wait_for(data, 5)
            sent = (await bob.stats())["alice"]
            assert sent["retries"] == 0 and sent["sent"] == 1

    asyncio.run(main())


async def _value(v):
    return v
