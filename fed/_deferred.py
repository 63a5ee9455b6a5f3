"""Calls whose arguments are still on their way: submitted to Ray once they arrive.

Data from other parties is received by this process (reps/0060), so a call
that takes such an argument cannot be handed to Ray before the data is here.
A ``Lane`` holds such calls and submits each when its inputs are done. Calls
to one actor share one lane, so that they reach Ray in program order even
when an earlier call waits for data and a later one does not.

Inputs are resolved on the proxies' loop thread, as data arrives. The job's
lanes submit through a ``Submitter``, which moves the submissions to a helper
thread for a while after a slow one, so that slow Ray submissions do not keep
holding up the receives behind them.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable, Optional, Sequence

from fed._hosts.value import failure_of

logger = logging.getLogger("silofed")

Future = concurrent.futures.Future


class _Waiting:
    __slots__ = ("inputs", "run", "out")

    def __init__(self, inputs: Sequence[Future], run: Callable[[], Any]):
        self.inputs = inputs
        self.run = run
        self.out: Future = Future()

    def ready(self) -> bool:
        return all(f.done() for f in self.inputs)


class Lane:
    """Submissions that must reach Ray in the order they were made (one per actor).

    A call for a lane with nothing waiting and with all its inputs done runs
    at once; otherwise it waits behind the calls before it and for its inputs.

    Args:
        schedule: how the calls that waited are run once their inputs are done:
            ``schedule(fn)`` calls ``fn`` (on some thread, soon). By default
            ``fn`` runs in the thread that completed the last input.
    """

    def __init__(self, schedule: Optional[Callable[[Callable[[], None]], None]] = None) -> None:
        self._lock = threading.Lock()
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._schedule = schedule

    def idle(self) -> bool:
        """True if no call is waiting in this lane."""
        with self._lock:
            return not self._waiting

    def submit(self, inputs: Sequence[Future], run: Callable[[], Any]) -> Any:
        """Run ``run()`` once every future in ``inputs`` is done and the calls before it ran.

        Returns:
            what ``run()`` returned, if it could run at once (its exceptions
            propagate); else a Future of it, failing with what ``run()``
            raises (e.g. a failed input's exception).
        """
        with self._lock:
            if not self._waiting and all(f.done() for f in inputs):
                failure = _first_failure(inputs)
                if failure is None:
                    return run()
                failed: Future = Future()  # fails later, at fed.get, not in the caller
                failed.set_exception(failure)
                return failed
            waiting = _Waiting(inputs, run)
            self._waiting.append(waiting)
        for f in inputs:
            f.add_done_callback(self._on_input_done)
        self._drain()
        return waiting.out

    def _on_input_done(self, _: Future) -> None:
        if self._schedule is None:
            self._drain()
        else:
            self._schedule(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:  # taken and run under the lock, so that no other thread submits in between
                if not (self._waiting and self._waiting[0].ready()):
                    return
                waiting = self._waiting.popleft()
                failure = _first_failure(waiting.inputs)
                if failure is not None:
                    ok, outcome = False, failure
                else:
                    try:
                        ok, outcome = True, waiting.run()
                    except BaseException as exc:
                        ok, outcome = False, exc
            # set before the next call runs (it may need this one's result, e.g. the actor it
            # created), and outside the lock: callbacks may submit to this lane
            if ok:
                waiting.out.set_result(outcome)
            else:
                waiting.out.set_exception(outcome)


def _first_failure(inputs: Sequence[Future]) -> BaseException | None:
    """As Ray does, a call with a failed input fails with that input's error and never runs."""
    return next((failure_of(f) for f in inputs if failure_of(f) is not None), None)


class Submitter:
    """Runs the submissions of calls whose inputs just arrived.

    A submission runs at once, in the thread that delivered the input
    (usually the proxies' loop thread, which holds the interpreter then): the
    call reaches Ray soonest and its task runs while the program thread wakes
    up. But a submission that took longer than ``slow_s`` (Ray pushing back, a
    large argument to serialize) sends the submissions of the next
    ``backoff_s`` to a helper thread ("silofed-submit", started at first
    need), so that slow submissions hold up the receives behind them at most
    once per ``backoff_s``. Handing every submission to another thread instead
    made the tiny-task loop ~0.11 ms (4%) slower per iteration (REP 0190).

    Args:
        slow_s: a submission slower than this turns the back-off on.
        backoff_s: how long submissions then go to the helper thread.
    """

    def __init__(self, slow_s: float = 0.005, backoff_s: float = 1.0) -> None:
        self._slow_s = slow_s
        self._backoff_s = backoff_s
        self._helper_until = 0.0  # time.monotonic() until which submissions go to the helper thread
        self._lock = threading.Lock()
        self._posted: collections.deque[Callable[[], None]] = collections.deque()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def schedule(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` now in this thread, or, after a slow one, soon on the helper thread."""
        started = time.monotonic()
        if started < self._helper_until:
            self._post(fn)
            return
        fn()
        took = time.monotonic() - started
        if took > self._slow_s:
            self._helper_until = time.monotonic() + self._backoff_s
            logger.info("a call waiting for data took %.1f ms to submit to Ray; the next %.0f s of such "
                        "submissions run on a helper thread, not on the proxies' loop", took * 1000,
                        self._backoff_s)

    def stop(self, timeout_s: float) -> None:
        """Let the helper thread run what was posted, then end it (waits at most ``timeout_s``)."""
        with self._lock:
            thread, self._stopping = self._thread, True
        if thread is not None:
            self._wake.set()
            thread.join(timeout_s)

    def _post(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._posted.append(fn)
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._serve, name="silofed-submit", daemon=True)
                self._thread.start()
        self._wake.set()

    def _serve(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._posted:
                        break
                    fn = self._posted.popleft()
                try:
                    fn()
                except Exception:  # a Lane reports failures through its Futures: this is a bug
                    logger.exception("a deferred submission failed")
            if self._stopping:
                return


def split(future: Future, n: int) -> list[Future]:
    """``n`` Futures of the items of the sequence ``future`` resolves to (or of its failure)."""
    parts: list[Future] = [Future() for _ in range(n)]

    def done(f: Future) -> None:
        exc = failure_of(f)
        items = f.result() if exc is None else ()
        if exc is None and len(items) != n:
            exc = ValueError(f"a call declared {n} return values but gave {len(items)}")
        for i, part in enumerate(parts):
            if exc is not None:
                part.set_exception(exc)
            else:
                part.set_result(items[i])

    future.add_done_callback(done)
    return parts
