"""The receiver proxy in the driver process, on the proxies' event-loop thread (the default placement).

A receive is a Future resolved by a callback on the loop as the data arrives
(no coroutine per receive): to the value itself if it is small, else to an
ObjectRef of it put in the object store once (reps/0060-driver-side-receiver.md).
Calls that take it are submitted once it is resolved (fed._deferred). One
optimisation lives here: resolving a receive that the program waits for in
``fed.get`` hands the interpreter lock to the program at once.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from typing import Any, Coroutine, Optional, Sequence

import ray

from fed._hosts.loop_thread import LoopThread
from fed._hosts.value import LocalValue, wait_for_values
from proxy import PendingReceive, ReceiverProxy, TransportConfig

logger = logging.getLogger("silofed")

Future = concurrent.futures.Future

# Ray copies an argument up to this size into the task itself; a larger
# received value is put in the object store once and passed by reference.
PUT_ABOVE_BYTES = 100 * 1024


class DriverReceiver:
    """The receiver proxy on the driver's proxy event loop.

    Args:
        config: the transport configuration of this party.
        thread: the loop to run on (shared with a driver-side sender).
    """

    def __init__(self, config: TransportConfig, thread: LoopThread):
        self._thread = thread
        self._proxy = ReceiverProxy(config)
        self._awaited: collections.Counter = collections.Counter()  # receive Futures a program waits on
        self._counting = threading.Lock()

    def _run(self, coro: Coroutine) -> Future:
        return self._thread.run(coro, "receiver")

    def start(self, timeout_s: float) -> str:
        """Start listening; returns the address.

        Raises:
            proxy.TransportError: the address cannot be bound.
        """
        return self._run(self._proxy.start()).result(timeout_s)

    def recv(self, src: str, key: str, producer: str) -> LocalValue:
        """Post the receive of object ``key`` from ``src`` (see base.ReceiverHost)."""
        received: Future = Future()
        self._thread.post(self._post, src, key, producer, received)
        return LocalValue(received)

    def wait(self, values: Sequence[LocalValue], timeout: Optional[float]) -> list[Any]:
        """The values behind ``values`` (see base.ReceiverHost).

        Meanwhile, resolving the receive of one of them hands the interpreter
        lock over for a moment, so that the woken program runs at once;
        otherwise the loop keeps it (a program computing in Python, or waiting
        for something else, is not interrupted per message).
        """
        awaited = [v.arrival for v in values if v.arrival is not None]
        with self._counting:
            self._awaited.update(awaited)
        try:
            return wait_for_values(values, timeout)
        finally:
            with self._counting:
                for future in awaited:
                    self._awaited[future] -= 1
                    if not self._awaited[future]:
                        del self._awaited[future]

    def _post(self, src: str, key: str, producer: str, received: Future) -> None:
        pending: Optional[PendingReceive] = None
        resolved = False

        def resolve(_: Any = None) -> None:  # at delivery, or at any other ending: once
            nonlocal resolved
            if pending is not None and not resolved:
                resolved = True
                self._resolve(pending, received)

        try:
            pending = self._proxy.post(src, key, producer, on_arrival=resolve)
        except BaseException as exc:
            received.set_exception(exc)
            return
        pending.arrived.add_done_callback(resolve)

    def _resolve(self, pending: PendingReceive, received: Future) -> None:
        try:
            value, size = self._proxy.value_of(pending)
        except asyncio.CancelledError:
            received.cancel()
            return
        except BaseException as exc:
            received.set_exception(exc)
            return
        if size <= PUT_ABOVE_BYTES:
            received.set_result(value)
            if received in self._awaited:
                _hand_over_interpreter()
        else:
            self._run(self._put(value, received))

    async def _put(self, value: Any, received: Future) -> None:
        try:
            ref = await asyncio.get_running_loop().run_in_executor(None, ray.put, value)
        except asyncio.CancelledError:
            received.cancel()
            raise
        except BaseException as exc:
            received.set_exception(exc)
            return
        received.set_result(ref)

    def abort(self, origin: str, cause: str) -> Future:
        """Fail every pending and future receive (ReceiverProxy.abort)."""
        return self._run(self._proxy.abort(origin, cause))

    def peer_seen(self, peer: str) -> None:
        """Tell the liveness watch that ``peer`` answered (ReceiverProxy.peer_seen)."""
        self._run(self._proxy.peer_seen(peer))

    def wait_peers_finished(self, timeout_s: float) -> Future:
        """A Future of ``{peer: state}`` once every peer left, or after ``timeout_s``."""
        return self._run(self._proxy.wait_peers_finished(timeout_s))

    def stats(self) -> Future:
        """A Future of the receive figures (ReceiverProxy.stats)."""
        return self._run(self._proxy.stats())

    def timeline(self) -> Future:
        """A Future of the recorded receive events (ReceiverProxy.timeline)."""
        return self._run(self._proxy.timeline())

    def close(self, timeout_s: float) -> None:
        """Stop listening and fail receives still waiting (or end them cancelled)."""
        for step in (lambda t: self._run(self._proxy.stop()).result(t),
                     lambda t: self._thread.cancel_group("receiver", t)):
            try:
                step(timeout_s)
            except Exception as exc:
                logger.warning("stopping the receiver failed: %s", exc)


def _hand_over_interpreter() -> None:
    """Release the interpreter lock for a moment (``time.sleep(0)`` does), so that a
    thread the resolved Future woke (the program in ``fed.get``) takes it now rather
    than once this loop thread next waits for I/O. ~25 µs sooner in the tiny-task loop."""
    time.sleep(0)
