"""Calls whose arguments are still on their way: submitted to Ray once they arrive.

Data from other parties is received by this process (reps/0060), so a call
that takes such an argument cannot be handed to Ray before the data is here.
A ``Lane`` holds such calls and submits each when its inputs are done. Calls
to one actor share one lane, so that they reach Ray in program order even
when an earlier call waits for data and a later one does not.

Inputs are resolved on the proxies' loop thread, as data arrives. The job's
lanes submit through a ``SubmitQueue`` instead, so that a slow Ray submission
never holds up the receives behind it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

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


class SubmitQueue:
    """Runs the submissions of calls whose inputs just arrived, away from the thread that delivered them.

    A submission posted here runs on a program thread that is waiting in
    ``fed.get`` (``helping``) if there is one: that thread is woken by the
    arrival anyway, so this costs no thread hand-off. Otherwise it runs on a
    helper thread ("silofed-submit", started at first need). Either way the
    proxies' loop only posts it, and a slow Ray submission never stalls the
    receives behind it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posted: collections.deque[Callable[[], None]] = collections.deque()
        self._helpers: list[threading.Event] = []  # wake-ups of program threads waiting in fed.get
        self._wake_thread = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` soon, after the functions posted before it, on a helping thread or the helper thread."""
        with self._lock:
            self._posted.append(fn)
            helper = self._helpers[-1] if self._helpers else None
            wake = helper or self._thread_wake_locked()
        wake.set()
        if helper is not None:
            time.sleep(0)  # hands the interpreter to the woken program thread now (as REP 0060 does)

    def run_posted(self) -> None:
        """Run, in this thread, what was posted and is not yet taken."""
        while True:
            with self._lock:
                if not self._posted:
                    return
                fn = self._posted.popleft()
            try:
                fn()
            except Exception:  # a Lane reports failures through its Futures: this is a bug
                logger.exception("a deferred submission failed")

    @contextlib.contextmanager
    def helping(self, wake: threading.Event) -> Iterator[None]:
        """While in this context, this thread takes the posts (``wake`` is set for each) and
        runs them with ``run_posted``; what it leaves is handed to the helper thread."""
        with self._lock:
            self._helpers.append(wake)
        try:
            yield
        finally:
            with self._lock:
                self._helpers.remove(wake)
                left = self._thread_wake_locked() if self._posted and not self._helpers else None
            if left is not None:
                left.set()

    def stop(self, timeout_s: float) -> None:
        """Let the helper thread run what was posted, then end it (waits at most ``timeout_s``)."""
        with self._lock:
            thread, self._stopping = self._thread, True
        if thread is not None:
            self._wake_thread.set()
            thread.join(timeout_s)

    def _thread_wake_locked(self) -> threading.Event:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._serve, name="silofed-submit", daemon=True)
            self._thread.start()
        return self._wake_thread

    def _serve(self) -> None:
        while True:
            self._wake_thread.wait()
            self._wake_thread.clear()
            self.run_posted()
            if self._stopping:
                return
