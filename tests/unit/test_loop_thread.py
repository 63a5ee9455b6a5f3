"""The driver's proxy loop thread: coroutines handed to it from other threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import warnings

import pytest

from fed._hosts.loop_thread import LoopThread


@pytest.fixture
def thread():
    loop_thread = LoopThread("test-loop")
    yield loop_thread
    loop_thread.stop(5)


async def _echo(value):
    await asyncio.sleep(0)
    return value


async def _fail():
    await asyncio.sleep(0)
    raise ValueError("bad input")


def test_a_coroutine_s_result_and_error_reach_the_caller_s_future(thread):
    assert thread.run(_echo(7), "g").result(5) == 7
    with pytest.raises(ValueError, match="bad input"):
        thread.run(_fail(), "g").result(5)


def test_cancelling_the_future_cancels_the_running_coroutine(thread):
    started, cancelled = threading.Event(), threading.Event()

    async def wait_forever():
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = thread.run(wait_forever(), "g")
    assert started.wait(5)
    assert future.cancel()
    assert cancelled.wait(5)
    deadline = time.monotonic() + 5  # the task ends just after the coroutine saw its cancellation
    while thread._groups["g"] and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not thread._groups["g"]  # the group forgot it


def test_a_cancelled_coroutine_cancels_its_future(thread):
    async def cancel_myself():
        asyncio.current_task().cancel()
        await asyncio.sleep(1)

    future = thread.run(cancel_myself(), "g")
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(5)


def test_cancel_group_ends_only_that_group_s_coroutines(thread):
    release = threading.Event()

    async def wait_for_release():
        while not release.is_set():
            await asyncio.sleep(0.01)
        return "released"

    mine, other = thread.run(wait_for_release(), "mine"), thread.run(wait_for_release(), "other")
    thread.cancel_group("mine", 5)
    assert mine.cancelled()
    release.set()
    assert other.result(5) == "released"


def test_handing_a_coroutine_to_a_closed_loop_raises_and_leaves_no_unawaited_coroutine():
    loop_thread = LoopThread("test-loop")
    loop_thread.stop(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would be a RuntimeWarning
        with pytest.raises(RuntimeError):
            loop_thread.run(_echo(1), "g")


def _count_wake_ups(thread: LoopThread) -> list[int]:
    woken = [0]
    run_requests = thread._run_requests

    def counted() -> None:
        woken[0] += 1
        run_requests()

    thread._run_requests = counted  # the loop is woken with this instance attribute from now on
    return woken


def test_requests_posted_while_the_loop_is_busy_run_in_order_after_one_wake_up(thread):
    woken = _count_wake_ups(thread)
    busy, release, ran = threading.Event(), threading.Event(), []
    thread.post(lambda: (busy.set(), release.wait(5)))
    assert busy.wait(5)
    for i in range(50):
        thread.post(ran.append, i)
    release.set()
    done = threading.Event()
    thread.post(done.set)
    assert done.wait(5)
    assert ran == list(range(50))
    assert woken[0] <= 3  # the busy one, the 50 together, the last; one wake-up each would be 52


def test_a_failing_request_is_reported_and_the_next_ones_still_run(thread):
    reported, done = [], threading.Event()
    thread.loop.call_soon_threadsafe(thread.loop.set_exception_handler, lambda loop, context: reported.append(context))
    busy, release = threading.Event(), threading.Event()
    thread.post(lambda: (busy.set(), release.wait(5)))
    assert busy.wait(5)
    thread.post(lambda: 1 / 0)
    thread.post(done.set)
    release.set()
    assert done.wait(5)
    assert len(reported) == 1 and isinstance(reported[0]["exception"], ZeroDivisionError)


def test_requests_from_many_threads_all_run_once_in_each_thread_s_order(thread):
    ran: list[tuple[int, int]] = []
    posters = [threading.Thread(target=lambda t=t: [thread.post(ran.append, (t, i)) for i in range(2000)])
               for t in range(4)]
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join(10)
    deadline = time.monotonic() + 5
    while len(ran) < 8000 and time.monotonic() < deadline:  # nothing posted after: a request left without a wake-up stays
        time.sleep(0.01)
    assert sorted(ran) == [(t, i) for t in range(4) for i in range(2000)]
    for t in range(4):
        assert [i for u, i in ran if u == t] == list(range(2000))


def test_posting_to_a_closed_loop_raises():
    loop_thread = LoopThread("closed-loop")
    loop_thread.stop(5)
    with pytest.raises(RuntimeError, match="closed"):
        loop_thread.post(print, "never")
