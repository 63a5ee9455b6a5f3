"""``LocalValue``: one object's value at this party, whatever holds it, and waiting for several.

The programming model never asks what holds a value. A ``LocalValue`` is
backed by one of:

* a Ray ObjectRef: a task's result here, or what the actor receiver returns;
* a Future that resolves to an ObjectRef (a call submitted once its inputs
  arrived; a large received value put in the object store) or to the value
  itself (a small received value, kept out of the object store: REP 0060).

This module is the only place that tells the two apart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any, Awaitable, Callable, Optional, Sequence, Union

import ray
from ray.exceptions import GetTimeoutError

Future = concurrent.futures.Future


class TimedOut(Exception):
    """Raised by ``wait_for_values`` (and ``ReceiverHost.wait``) when the timeout passed.

    Attributes:
        missing: the indices of the values that were not there in time.
    """

    def __init__(self, missing: list[int]):
        super().__init__(f"values {missing} were not there in time")
        self.missing = missing


class ReceiveCancelled(Exception):
    """A value's receive ended without a value or an error: the receiver was closed meanwhile.

    Attributes:
        index: the index of that value.
    """

    def __init__(self, index: int):
        super().__init__(f"the receive of value {index} was cancelled")
        self.index = index


class LocalValue:
    """One object's value at this party: a Ray ObjectRef, or a Future of an ObjectRef or of the value.

    Args:
        source: the ObjectRef, or the Future.
    """

    __slots__ = ("_ref", "_arrival")

    def __init__(self, source: Union[ray.ObjectRef, Future]):
        if isinstance(source, Future):
            self._arrival: Optional[Future] = source
            self._ref: Optional[ray.ObjectRef] = None
        else:
            self._arrival, self._ref = None, source

    @property
    def arrival(self) -> Optional[Future]:
        """The Future to wait for before Ray can take the value; None if Ray can take it now."""
        return self._arrival

    def for_ray(self) -> Any:
        """What a Ray call takes for this value: an ObjectRef, or the value itself.

        Blocks until ``arrival`` is done; raises its failure.
        """
        if self._arrival is not None:
            return self._arrival.result()
        return self._ref

    def object_ref(self) -> ray.ObjectRef:
        """The value as a Ray ObjectRef (a small received value is put in the object store once).

        Blocks until ``arrival`` is done; raises its failure.
        """
        if self._arrival is not None:
            held = self._arrival.result()
            self._ref = held if isinstance(held, ray.ObjectRef) else ray.put(held)
            self._arrival = None
        assert self._ref is not None
        return self._ref

    async def fetch(self, get: Callable[[ray.ObjectRef], Awaitable[Any]]) -> Any:
        """The value, awaited on the running event loop; ``get`` fetches an ObjectRef's value.

        Raises what producing or receiving the value raised.
        """
        held: Any = self._ref
        if self._arrival is not None:
            held = await asyncio.wrap_future(self._arrival)
        return await get(held) if isinstance(held, ray.ObjectRef) else held


def failure_of(future: Future) -> Optional[BaseException]:
    """The failure of a done ``future``: its exception, a CancelledError if it was cancelled, or None."""
    if future.cancelled():
        return concurrent.futures.CancelledError()
    return future.exception()


def wait_for_values(values: Sequence[LocalValue], timeout: Optional[float]) -> list[Any]:
    """The values behind ``values``, waiting at most ``timeout`` seconds (None: no limit).

    Returns as soon as one of them failed, with that failure.

    Raises:
        TimedOut: naming the values still missing.
        ReceiveCancelled: a receive was cancelled (the receiver closed).
        the first failure among them, as raised by Ray or the receiver.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    arrivals = [v._arrival for v in values if v._arrival is not None]
    not_done: set[Future] = set()
    if len(arrivals) == 1:  # one value from a peer, the common case: cheaper than wait()
        try:
            arrivals[0].exception(timeout)  # only waits: a failure it holds is raised below
        except concurrent.futures.TimeoutError:
            not_done = {arrivals[0]}
        except concurrent.futures.CancelledError:
            pass  # raised below
    elif arrivals:
        _, not_done = concurrent.futures.wait(arrivals, timeout=timeout,
                                              return_when=concurrent.futures.FIRST_EXCEPTION)
    # a failure (also one that ended the wait early) is raised before a timeout
    held: list[Any] = []
    for i, value in enumerate(values):
        arrival = value._arrival
        if arrival is None:
            held.append(value._ref)
        elif arrival.cancelled():
            raise ReceiveCancelled(i)
        elif arrival.done():
            held.append(arrival.result())
        else:
            held.append(None)
    if not_done:
        raise TimedOut([i for i, v in enumerate(values) if v._arrival in not_done])
    refs = [h for h in held if isinstance(h, ray.ObjectRef)]
    if not refs:
        return held
    try:
        got = iter(ray.get(refs, timeout=None if deadline is None else max(0.0, deadline - time.monotonic())))
    except GetTimeoutError:
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        raise TimedOut([i for i, h in enumerate(held) if isinstance(h, ray.ObjectRef) and h not in ready]) from None
    return [next(got) if isinstance(h, ray.ObjectRef) else h for h in held]
