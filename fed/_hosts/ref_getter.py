"""The values of Ray objects a send waits for, got on a helper thread when they come soon.

Awaiting an ObjectRef on the proxy loop goes through Ray's completion
callback, which in the tiny-task loop reached the loop ~100-150 µs later than
a blocking ``ray.get`` on another thread returned (reps/0140-quick-object-gets.md).
So a send first hands its ref to one helper thread that waits for it with
``ray.get`` for at most ``QUICK_WAIT_S``; a send that finds the thread busy,
or whose object is not ready in that time, awaits the ref as before. One
slow object therefore never holds up another send for longer than that.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Awaitable, Optional

import ray
from ray.exceptions import GetTimeoutError

# How long the helper thread waits for one object before leaving it to Ray's
# callback: longer than a small task takes, short enough that a send arriving
# meanwhile loses little by awaiting its ref instead.
QUICK_WAIT_S = 0.02

_STOP = None
_GOT, _RAISED, _LATE = "got", "raised", "late"  # what the helper thread did with an object


class RefGetter:
    """Gets objects for the sends of one event loop (only ever used from that loop).

    Args:
        wait_s: how long the helper thread waits for one object.
    """

    def __init__(self, wait_s: float = QUICK_WAIT_S):
        self._wait_s = wait_s
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._busy = False
        self.quick_gets = 0  # objects the helper thread settled in time, value or error (tests read it)

    async def value(self, ref: Awaitable) -> Any:
        """The value of ``ref`` (an ObjectRef, or any awaitable), raising what awaiting it would raise."""
        if self._busy or not isinstance(ref, ray.ObjectRef):
            return await ref
        loop = asyncio.get_running_loop()
        outcome = loop.create_future()
        self._busy = True
        self._start()
        self._jobs.put((ref, loop, outcome))
        got, value = await outcome
        if got is _LATE:
            return await ref  # not ready in time: Ray's callback tells when it is
        self.quick_gets += 1
        if got is _RAISED:
            raise value
        return value

    def close(self) -> None:
        """Stop the helper thread, waiting for the object it may still wait for (at most ``wait_s``)."""
        if self._thread is not None:
            self._jobs.put(_STOP)
            self._thread.join(self._wait_s + 1.0)
            self._thread = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="silofed-get", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            ref, loop, outcome = job
            try:
                result = (_GOT, ray.get(ref, timeout=self._wait_s))
            except GetTimeoutError:
                result = (_LATE, None)  # also a task that raised GetTimeoutError: awaiting tells which
            except Exception as exc:  # the task's error, raised as awaiting the ref raises it
                result = (_RAISED, exc)
            del ref
            try:
                loop.call_soon_threadsafe(self._finished, outcome, result)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _finished(self, outcome: asyncio.Future, result: tuple) -> None:
        self._busy = False
        if not outcome.done():  # the send may have been cancelled meanwhile
            outcome.set_result(result)
