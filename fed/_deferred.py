"""Calls whose arguments are still on their way: submitted to Ray once they arrive.

Data from other parties is received by this process (reps/0060), so a call
that takes such an argument cannot be handed to Ray before the data is here.
A ``Lane`` holds such calls and submits each when its inputs are done. Calls
to one actor share one lane, so that they reach Ray in program order even
when an earlier call waits for data and a later one does not.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
from typing import Any, Callable, Sequence

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
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: collections.deque[_Waiting] = collections.deque()

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
        self._drain()

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


def _failure_of(f: Future) -> BaseException | None:
    if f.cancelled():
        return concurrent.futures.CancelledError()
    return f.exception()


def _first_failure(inputs: Sequence[Future]) -> BaseException | None:
    """As Ray does, a call with a failed input fails with that input's error and never runs."""
    return next((_failure_of(f) for f in inputs if _failure_of(f) is not None), None)


def pending_inputs(values: Sequence[Any]) -> list[Future]:
    """The Futures among ``values`` (inputs that may still be on their way)."""
    return [v for v in values if isinstance(v, Future)]


def split(future: Future, n: int) -> list[Future]:
    """``n`` Futures of the items of the sequence ``future`` resolves to (or of its failure)."""
    parts = [Future() for _ in range(n)]

    def done(f: Future) -> None:
        exc = _failure_of(f)
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
