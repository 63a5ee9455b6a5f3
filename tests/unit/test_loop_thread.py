"""The driver's proxy loop thread: coroutines handed to it from other threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import warnings

import pytest

from fed._loop_thread import LoopThread


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
