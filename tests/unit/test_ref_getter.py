"""The objects a send waits for, got by ray.get on a helper thread when they come soon (REP 0140)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import ray

from fed._hosts.ref_getter import RefGetter
from tests.support import start_local_ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    start_local_ray(num_cpus=2, object_store_memory=100 << 20, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


@ray.remote
def _after(seconds: float, value):
    time.sleep(seconds)
    return value


@ray.remote
def _fails():
    raise ValueError("boom at alice")


def _getter_threads():
    return [t for t in threading.enumerate() if t.name == "silofed-get"]


def test_an_object_ready_soon_is_got_on_the_helper_thread():
    getter = RefGetter(wait_s=5.0)

    async def main():
        return [await getter.value(_after.remote(0.01, i)) for i in range(3)]

    try:
        assert asyncio.run(main()) == [0, 1, 2]
        assert getter.quick_gets == 3
    finally:
        getter.close()


def test_an_object_late_for_the_thread_is_awaited_and_does_not_hold_up_another():
    getter = RefGetter(wait_s=1.0)

    async def main():
        slow = asyncio.ensure_future(getter.value(_after.remote(3.0, "slow")))
        await asyncio.sleep(0.05)  # the helper thread now waits for the slow object
        started = time.monotonic()
        quick = await getter.value(_after.remote(0.0, "quick"))
        return quick, time.monotonic() - started, await slow

    try:
        quick, quick_s, slow = asyncio.run(main())
        assert (quick, slow) == ("quick", "slow")
        assert quick_s < 0.8, f"the quick object waited {quick_s:.2f} s behind the slow one"
        assert getter.quick_gets == 0  # the slow one timed out there, the quick one was awaited
    finally:
        getter.close()


def test_a_failed_task_raises_as_awaiting_its_ref_raises():
    getter = RefGetter(wait_s=5.0)

    async def outcome(get):
        try:
            await get(_fails.remote())
        except Exception as exc:
            return exc
        raise AssertionError("no error raised")

    async def awaited(ref):
        return await ref

    try:
        through_thread = asyncio.run(outcome(getter.value))
        plain = asyncio.run(outcome(awaited))
        assert isinstance(through_thread, ValueError) and isinstance(through_thread, ray.exceptions.RayTaskError)
        assert type(through_thread).__mro__[1:] == type(plain).__mro__[1:]
        assert "boom at alice" in str(through_thread)
    finally:
        getter.close()


def test_an_awaitable_that_is_not_a_ref_is_awaited():
    getter = RefGetter()

    async def value():
        return {"w": 1.5}

    async def main():
        return await getter.value(value())

    assert asyncio.run(main()) == {"w": 1.5}
    assert getter.quick_gets == 0 and not _getter_threads()  # no thread started for it


def test_a_cancelled_wait_frees_the_thread_for_the_next_object_and_close_stops_it():
    getter = RefGetter(wait_s=0.3)

    async def main():
        waiting = asyncio.ensure_future(getter.value(_after.remote(2.0, "never used")))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.sleep(0.5)  # the thread gave up on that object meanwhile
        return await getter.value(_after.remote(0.0, "next"))

    assert asyncio.run(main()) == "next"
    assert getter.quick_gets == 1
    assert len(_getter_threads()) == 1
    getter.close()
    assert not _getter_threads()


def test_the_driver_sender_sends_a_ray_result_through_the_getter_and_its_close_stops_the_thread():
    from fed._hosts import LocalValue
    from fed._hosts.driver_receiver import DriverReceiver
    from fed._hosts.driver_sender import DriverSender
    from fed._hosts.loop_thread import LoopThread
    from tests.support import free_ports, transport_config

    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}
    thread = LoopThread("silofed-proxies")
    bob = DriverReceiver(transport_config(addrs, "bob", connect_timeout_s=60), thread)
    bob.start(10)
    alice = DriverSender(transport_config(addrs, "alice", connect_timeout_s=60), False, thread)
    value, error = _after.remote(0.0, {"w": 1.5}), _fails.remote()
    ray.wait([value, error], num_returns=2)  # done: the helper thread gets them well within its 20 ms
    try:
        waiting = bob.recv("alice", "1", "train_step")
        _, sent_error = alice.send("bob", "1", "train_step", LocalValue(value)).result(30)
        assert not sent_error and bob.wait([waiting], 30) == [{"w": 1.5}]
        failed = bob.recv("alice", "2", "fails")
        _, sent_error = alice.send("bob", "2", "fails", LocalValue(error)).result(30)
        assert sent_error  # the task's error went in place of its value
        with pytest.raises(Exception, match="ValueError in 'fails' at party 'alice'"):
            bob.wait([failed], 30)
        assert alice._getter.quick_gets == 2  # both objects came through the helper thread
    finally:
        alice.close(5)
        bob.close(5)
        thread.stop(5)
    assert not _getter_threads()
