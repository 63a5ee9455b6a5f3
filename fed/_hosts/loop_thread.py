"""The event loop the driver-side proxies run on, in a daemon thread of the driver.

The loop is uvloop's where it is installed (every platform but Windows): the
proxies' per-message work is mostly event-loop bookkeeping (callbacks,
futures, tasks), which uvloop does in C (reps/0100-uvloop-proxy-loop.md).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import threading
from types import ModuleType
from typing import Any, Callable, Coroutine, Iterable, Optional

uvloop: Optional[ModuleType]
try:
    import uvloop
except ImportError:  # Windows: uvloop does not exist there
    uvloop = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's if it is installed, else asyncio's default."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


class LoopThread:
    """An event loop in its own daemon thread; coroutines are handed to it from any thread.

    Coroutines run in named groups (one per proxy), so that one proxy can
    cancel what it still runs without touching the other's work. Requests
    from other threads (``run``, ``post``) share one wake-up of the loop when
    they come before it got to the first (reps/0160-one-wake-up-per-burst.md).

    Args:
        name: the thread's name (shows in py-spy and thread dumps).
    """

    def __init__(self, name: str):
        self.loop = new_event_loop()
        self._groups: dict[str, set[asyncio.Task]] = {}
        self._requests: collections.deque = collections.deque()
        self._wake_pending = False
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine, group: str) -> concurrent.futures.Future:
        """Schedule ``coro`` on the loop as part of ``group``; returns a Future of its result.

        Cancelling the Future cancels the coroutine (if it has not finished).
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            self.post(self._start, coro, group, future)
        except RuntimeError:  # the loop is closed
            coro.close()
            raise
        return future

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` on the loop soon, from any thread, after the requests made before it.

        Raises:
            RuntimeError: the loop is closed.
        """
        if self.loop.is_closed():  # checked first: a wake-up pending when it closed never comes
            raise RuntimeError("the proxies' event loop is closed")
        self._requests.append((callback, args))
        if self._wake_pending:  # the loop has not yet run the requests: it will run this one too
            return
        self._wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._run_requests)
        except RuntimeError:  # the loop is closed: nothing posted will run
            self._requests.clear()
            self._wake_pending = False
            raise

    def _run_requests(self) -> None:
        # Cleared before taking any request: one posted from now on schedules its own
        # wake-up, and one posted before is taken below (the interpreter lock orders the two).
        self._wake_pending = False
        for _ in range(len(self._requests)):
            callback, args = self._requests.popleft()
            try:
                callback(*args)
            except Exception as exc:  # as the loop treats a failing callback: report it, go on
                self.loop.call_exception_handler({"message": f"posted callback {callback!r} failed", "exception": exc})

    def _start(self, coro: Coroutine, group: str, future: concurrent.futures.Future) -> None:
        if future.cancelled():
            coro.close()
            return
        task = self.loop.create_task(coro)
        tasks = self._groups.setdefault(group, set())
        tasks.add(task)
        task.add_done_callback(functools.partial(_settle, tasks, future))
        future.add_done_callback(functools.partial(self._cancel_if_cancelled, task))

    def _cancel_if_cancelled(self, task: asyncio.Task, future: concurrent.futures.Future) -> None:
        if future.cancelled():  # by the caller, from any thread; not when the task ended
            try:
                self.loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop is closed: the task is gone with it
                pass

    def cancel_group(self, group: str, timeout_s: float) -> None:
        """Cancel the coroutines of ``group`` still running and wait until they ended."""
        asyncio.run_coroutine_threadsafe(_cancel(lambda: self._groups.get(group, set())), self.loop).result(timeout_s)

    def stop(self, timeout_s: float) -> None:
        """Cancel every task left on the loop, stop it and wait (at most ``timeout_s``) for the thread."""
        try:
            asyncio.run_coroutine_threadsafe(_cancel(asyncio.all_tasks), self.loop).result(timeout_s)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass  # stopped anyway below
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.loop.close()


def _settle(tasks: set, future: concurrent.futures.Future, task: asyncio.Task) -> None:
    """Give ``future`` the outcome of ``task``, which ended."""
    tasks.discard(task)
    if task.cancelled():
        future.cancel()
    elif future.set_running_or_notify_cancel():  # else cancelled by the caller meanwhile
        error = task.exception()
        if error is None:
            future.set_result(task.result())
        else:
            future.set_exception(error)


async def _cancel(tasks_now: Callable[[], Iterable[asyncio.Task]]) -> None:
    tasks = [t for t in tasks_now() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
