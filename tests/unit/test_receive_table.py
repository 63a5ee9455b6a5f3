"""ReceiveTable: matching, admission, reservations, duplicates and the budget.

The table is plain state, so these tests drive it directly (no Ray, no gRPC):
single operations first, then seeded random schedules that check the
invariants after every step, then a liveness simulation of the flow-control
argument in reps/0030-flow-control.md.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from proxy._receive_table import Admission, Arrival, ReceiveTable


def arrival(nbytes: int, producer: str = "f") -> Arrival:
    return Arrival(kind=0, producer=producer, pickle_size=nbytes, buffer_sizes=[], payload=bytearray(nbytes))


def run(coro):
    return asyncio.run(coro)


# -- single operations ---------------------------------------------------------

def test_unsolicited_message_is_reserved_then_buffered_until_posted():
    async def body():
        t = ReceiveTable(budget_bytes=100)
        assert t.admit("a", "1", 40) is Admission.RESERVED
        assert t.stats.peak_buffered_bytes == 40
        assert t.deliver("a", "1", arrival(40), Admission.RESERVED)
        assert t.stats.buffered_bytes == 40
        fut = t.post("a", "1")
        assert fut.done() and len(fut.result().payload) == 40
        assert t.stats.buffered_bytes == 0
        assert t.stats.received == 1 and t.stats.received_bytes == 40
    run(body())


def test_posted_receive_is_wanted_and_never_counts_against_the_budget():
    async def body():
        t = ReceiveTable(budget_bytes=10)
        fut = t.post("a", "1")
        assert t.admit("a", "1", 1000) is Admission.WANTED
        assert t.stats.peak_buffered_bytes == 0
        assert t.deliver("a", "1", arrival(1000), Admission.WANTED)
        assert fut.done() and len(fut.result().payload) == 1000
        assert t.stats.buffered_bytes == 0
    run(body())


def test_posted_receive_is_accepted_even_when_the_budget_is_full():
    async def body():
        t = ReceiveTable(budget_bytes=10)
        assert t.admit("a", "1", 10) is Admission.RESERVED
        assert t.admit("a", "2", 1) is Admission.BUSY
        fut = t.post("a", "2")
        assert t.admit("a", "2", 1) is Admission.WANTED
        t.deliver("a", "2", arrival(1), Admission.WANTED)
        assert fut.done()
    run(body())


def test_busy_when_the_budget_would_be_exceeded_and_counted():
    t = ReceiveTable(budget_bytes=100)
    assert t.admit("a", "1", 60) is Admission.RESERVED
    assert t.admit("a", "2", 41) is Admission.BUSY
    assert t.admit("a", "3", 40) is Admission.RESERVED
    assert t.admit("b", "4", 1) is Admission.BUSY
    assert t.stats.busy_replies == 2
    assert t.stats.peak_buffered_bytes == 100


def test_an_empty_buffer_admits_one_message_larger_than_the_budget():
    t = ReceiveTable(budget_bytes=100)
    assert t.admit("a", "big", 1000) is Admission.RESERVED
    assert t.admit("a", "small", 1) is Admission.BUSY
    t.release(Admission.RESERVED, 1000)
    assert t.admit("a", "small", 1) is Admission.RESERVED


def test_release_gives_back_a_reservation_of_a_message_that_did_not_arrive():
    t = ReceiveTable(budget_bytes=100)
    assert t.admit("a", "1", 100) is Admission.RESERVED
    assert t.admit("a", "2", 1) is Admission.BUSY
    t.release(Admission.RESERVED, 100)
    assert t.admit("a", "2", 100) is Admission.RESERVED
    assert t.stats.buffered_bytes == 0


def test_release_of_wanted_message_changes_nothing():
    async def body():
        t = ReceiveTable(budget_bytes=100)
        t.post("a", "1")
        assert t.admit("a", "1", 50) is Admission.WANTED
        t.release(Admission.WANTED, 50)
        assert t.admit("a", "2", 100) is Admission.RESERVED
    run(body())


def test_duplicate_after_delivery_is_refused_at_admission_and_at_delivery():
    async def body():
        t = ReceiveTable(budget_bytes=100)
        assert t.admit("a", "1", 10) is Admission.RESERVED
        # a retried copy streams in concurrently with the first one
        assert t.admit("a", "1", 10) is Admission.RESERVED
        assert t.deliver("a", "1", arrival(10), Admission.RESERVED)
        assert not t.deliver("a", "1", arrival(10), Admission.RESERVED)
        assert t.admit("a", "1", 10) is Admission.DUPLICATE
        assert t.stats.duplicates == 2
        assert t.stats.buffered_bytes == 10  # one copy kept, the reservation of the other given back
        assert t.post("a", "1").done()
        assert t.stats.buffered_bytes == 0
        assert t.admit("a", "1", 10) is Admission.DUPLICATE  # still a duplicate after it was claimed
    run(body())


def test_numbered_messages_are_remembered_in_memory_bounded_by_how_far_they_arrive_out_of_order():
    async def body():
        t = ReceiveTable(budget_bytes=1 << 30)
        rng = random.Random(7)
        window = 50
        for start in range(1, 10_001, window):  # 10,000 messages from "a", shuffled within each window
            seqs = list(range(start, start + window))
            rng.shuffle(seqs)
            for i, seq in enumerate(seqs):
                key = str(seq)
                assert t.deliver("a", key, arrival(1), t.admit("a", key, 1, seq=seq), seq=seq)
                assert t.remembered() <= window
                earlier = rng.choice(seqs[:i + 1])  # a retry of one already here: below or above the watermark
                assert t.admit("a", str(earlier), 1, seq=earlier) is Admission.DUPLICATE
            assert t.post("a", str(start)).done()
        assert t.remembered() == 0
        assert t.stats.received == 10_000 and t.stats.duplicates == 10_000
        assert t.admit("a", "1", 1, seq=1) is Admission.DUPLICATE  # long claimed, still known
        assert t.admit("b", "1", 1, seq=1) is Admission.RESERVED  # numbers are per sender
        # unnumbered messages (control ones) are remembered by key
        assert t.deliver("b", "x", arrival(1), t.admit("b", "x", 1)) and t.remembered() == 1
        assert t.admit("b", "x", 1) is Admission.DUPLICATE
    run(body())


def test_arrival_callback_runs_at_delivery_with_the_result_set_and_only_then(caplog):
    async def body():
        t = ReceiveTable(budget_bytes=100)
        seen = []
        fut = t.post("a", "1", on_arrival=lambda: seen.append(fut.result().producer))
        assert t.deliver("a", "1", arrival(8, producer="train_step"), Admission.WANTED)
        assert seen == ["train_step"]  # called within deliver, the future's result already set

        # not called for data that arrived before the receive (its future is done at once) ...
        assert t.deliver("a", "2", arrival(8), t.admit("a", "2", 8))
        early = t.post("a", "2", on_arrival=lambda: seen.append("early"))
        # ... nor for a receive that fails
        failing = t.post("a", "3", on_arrival=lambda: seen.append("failed"))
        t.fail_all(RuntimeError("peer gone"))
        assert early.done() and failing.done() and seen == ["train_step"]

        # a callback that raises does not fail the delivery
        t2 = ReceiveTable(budget_bytes=100)
        fut2 = t2.post("a", "1", on_arrival=lambda: 1 / 0)
        assert t2.deliver("a", "1", arrival(8), Admission.WANTED)
        assert fut2.done() and t2.stats.received == 1
    run(body())
    assert "arrival callback failed" in caplog.text


def test_same_key_from_different_sources_are_different_messages():
    async def body():
        t = ReceiveTable(budget_bytes=100)
        fa, fb = t.post("a", "1"), t.post("b", "1")
        t.deliver("b", "1", arrival(2, "g"), t.admit("b", "1", 2))
        assert fb.done() and not fa.done()
        t.deliver("a", "1", arrival(3, "f"), t.admit("a", "1", 3))
        assert fa.result().producer == "f" and fb.result().producer == "g"
    run(body())


def test_receive_posted_while_the_message_streams_in_gets_it_and_frees_the_reservation():
    async def body():
        t = ReceiveTable(budget_bytes=100)
        adm = t.admit("a", "1", 100)
        assert adm is Admission.RESERVED
        fut = t.post("a", "1")
        assert t.deliver("a", "1", arrival(100), adm)
        assert fut.done()
        assert t.stats.buffered_bytes == 0
        assert t.admit("a", "2", 100) is Admission.RESERVED
    run(body())


def test_posting_the_same_receive_twice_is_a_bug():
    async def body():
        t = ReceiveTable(budget_bytes=100)
        t.post("a", "1")
        with pytest.raises(RuntimeError, match="posted twice"):
            t.post("a", "1")
    run(body())


def test_fail_all_fails_pending_and_later_receives():
    async def body():
        t = ReceiveTable(budget_bytes=100)
        pending = t.post("a", "1")
        err = RuntimeError("peer gone")
        t.fail_all(err)
        assert pending.exception() is err
        assert t.post("a", "2").exception() is err
    run(body())


# -- random schedules: invariants after every step -----------------------------

class _Model:
    """What the table must hold, computed independently of it."""

    def __init__(self, budget: int):
        self.budget = budget
        self.streaming: dict[int, tuple[str, str, int, Admission]] = {}  # stream id -> message
        self.buffered: dict[tuple[str, str], int] = {}
        self.delivered: set[tuple[str, str]] = set()
        self.posted: dict[tuple[str, str], asyncio.Future] = {}

    def unsolicited_in_memory(self) -> list[int]:
        reserved = [n for (_, _, n, adm) in self.streaming.values() if adm is Admission.RESERVED]
        return reserved + list(self.buffered.values())


@pytest.mark.parametrize("seed", range(40))
def test_random_schedules_keep_every_invariant(seed):
    async def body():
        rng = random.Random(seed)
        budget = rng.choice([1, 50, 100, 1000])
        t = ReceiveTable(budget_bytes=budget)
        m = _Model(budget)
        sizes = {("a" if k % 2 else "b", str(k)): rng.randint(0, 300) for k in range(30)}
        keys = list(sizes)
        # odd seeds: messages numbered per sender, as a sender proxy numbers them (reps/0130)
        seqs = {k: (1 + k_index // 2 if seed % 2 else 0) for k_index, k in enumerate(keys)}
        next_stream = 0
        for _ in range(600):
            op = rng.random()
            if op < 0.4:  # a header arrives (possibly a retry or a duplicate)
                src, key = rng.choice(keys)
                n = sizes[(src, key)]
                adm = t.admit(src, key, n, seq=seqs[(src, key)])
                if (src, key) in m.delivered:
                    assert adm is Admission.DUPLICATE
                elif (src, key) in m.posted:
                    assert adm is Admission.WANTED, "a posted receive must always be accepted"
                else:
                    used = sum(m.unsolicited_in_memory())
                    expect_busy = used > 0 and used + n > budget
                    assert adm is (Admission.BUSY if expect_busy else Admission.RESERVED)
                if adm in (Admission.WANTED, Admission.RESERVED):
                    m.streaming[next_stream] = (src, key, n, adm)
                    next_stream += 1
            elif op < 0.7 and m.streaming:  # a stream completes
                sid = rng.choice(list(m.streaming))
                src, key, n, adm = m.streaming.pop(sid)
                fresh = t.deliver(src, key, arrival(n), adm, seq=seqs[(src, key)])
                assert fresh is ((src, key) not in m.delivered)
                if fresh:
                    m.delivered.add((src, key))
                    if (src, key) in m.posted:
                        assert m.posted[(src, key)].done()
                    else:
                        m.buffered[(src, key)] = n
            elif op < 0.8 and m.streaming:  # a stream breaks off
                sid = rng.choice(list(m.streaming))
                src, key, n, adm = m.streaming.pop(sid)
                t.release(adm, n)
            else:  # the program posts a receive
                candidates = [k for k in keys if k not in m.posted]
                if not candidates:
                    continue
                k = rng.choice(candidates)
                fut = t.post(*k)
                m.posted[k] = fut
                if k in m.buffered:
                    assert fut.done() and len(fut.result().payload) == m.buffered.pop(k)
                else:
                    assert not fut.done()
            in_memory = m.unsolicited_in_memory()
            assert t.stats.buffered_bytes == sum(m.buffered.values())
            # the budget is never exceeded, except by one message alone (empty ones take no room)
            nonempty = [n for n in in_memory if n]
            assert sum(nonempty) <= budget or len(nonempty) == 1, (in_memory, budget)
            assert t.stats.peak_buffered_bytes <= max(budget, max(sizes.values()))
        for k, fut in m.posted.items():
            assert fut.done() is (k in m.delivered)
    run(body())


# -- liveness: the flow-control argument, simulated ------------------------------

@pytest.mark.parametrize("seed", range(20))
def test_senders_retrying_busy_always_finish_whatever_the_receive_order(seed):
    """Every message is pushed before the program asks for any; the program
    asks in a random order (reverse order included) and waits for each value
    before asking for the next. Senders retry on BUSY. Everything arrives and
    the unsolicited bytes never exceed the budget plus one message."""

    async def body():
        rng = random.Random(seed)
        n_msgs = 200
        sizes = [rng.randint(1, 400) for _ in range(n_msgs)]
        budget = rng.choice([1, 300, 1000])
        t = ReceiveTable(budget_bytes=budget)
        order = list(range(n_msgs))
        if seed % 2:
            order.reverse()
        else:
            rng.shuffle(order)
        unsent = set(range(n_msgs))
        consumed = 0
        steps = 0
        while consumed < n_msgs:
            steps += 1
            assert steps < 100 * n_msgs, "no progress: deadlock"
            # every sender tries once (in a random order); BUSY ones stay unsent
            for i in rng.sample(sorted(unsent), len(unsent)):
                adm = t.admit("a", str(i), sizes[i])
                if adm is not Admission.BUSY:
                    t.deliver("a", str(i), arrival(sizes[i]), adm)
                    unsent.discard(i)
                assert t.stats.peak_buffered_bytes <= budget + max(sizes)
            # the program blocks on its next receive
            fut = t.post("a", str(order[consumed]))
            while not fut.done():
                i = order[consumed]
                assert i in unsent
                adm = t.admit("a", str(i), sizes[i])
                assert adm is Admission.WANTED
                t.deliver("a", str(i), arrival(sizes[i]), adm)
                unsent.discard(i)
            consumed += 1
        assert t.stats.buffered_bytes == 0
        assert t.stats.received == n_msgs
    run(body())


# -- holding a BUSY stream: wake-ups ---------------------------------------------

def test_wait_for_change_wakes_on_post_release_and_claim_only():
    async def body():
        t = ReceiveTable(budget_bytes=10)
        assert t.admit("a", "1", 10) is Admission.RESERVED
        assert t.admit("a", "2", 5, count_busy=False) is Admission.BUSY
        assert t.stats.busy_replies == 0  # a held answer is not a BUSY reply

        change = t.wait_for_change()
        t.admit("b", "9", 1, count_busy=False)  # another refusal changes nothing
        await asyncio.sleep(0)
        assert not change.done()
        t.post("a", "2")  # the held message is now wanted
        await asyncio.sleep(0)
        assert change.done()
        assert t.admit("a", "2", 5) is Admission.WANTED

        change = t.wait_for_change()
        t.deliver("a", "1", arrival(10), Admission.RESERVED)  # reserved -> buffered
        assert t.admit("a", "3", 5, count_busy=False) is Admission.BUSY
        change = t.wait_for_change()
        t.post("a", "1")  # claims the buffered 10 bytes
        assert change.done()
        assert t.admit("a", "3", 5) is Admission.RESERVED

        change = t.wait_for_change()
        t.release(Admission.RESERVED, 5)  # a stream broke off
        assert change.done()
    run(body())


def test_waits_given_up_do_not_pile_up_while_nothing_changes():
    """A held message waits for a change, gives up after its hold time, is sent again, waits again..."""

    async def body():
        t = ReceiveTable(budget_bytes=10)
        assert t.admit("a", "1", 10) is Admission.RESERVED
        for _ in range(1000):
            t.wait_for_change().cancel()  # asyncio.wait_for cancels it when the hold times out
        live = t.wait_for_change()
        assert len(t._waiters) <= 2  # not one per wait ever made
        t.release(Admission.RESERVED, 10)
        assert live.done()
    run(body())


def test_held_stream_is_admitted_as_soon_as_its_receive_is_posted():
    """The receiver's hold loop, in miniature: it re-admits after each change."""

    async def body():
        t = ReceiveTable(budget_bytes=10)
        t.admit("a", "1", 10)

        async def hold(key: str) -> Admission:
            adm = t.admit("a", key, 10, count_busy=False)
            while adm is Admission.BUSY:
                await t.wait_for_change()
                adm = t.admit("a", key, 10, count_busy=False)
            return adm

        held = asyncio.ensure_future(hold("2"))
        await asyncio.sleep(0.01)
        assert not held.done()
        t.post("a", "2")
        assert await asyncio.wait_for(held, 1) is Admission.WANTED
    run(body())
