"""Where this party's receiver proxy runs: a thread of the driver, or a Ray actor.

* ``DriverReceiver`` (the default) runs ``proxy.ReceiverProxy`` on the
  event loop of a daemon thread of this process ("silofed-proxies", shared
  with the driver-side sender). A receive is a Future of the value
  (small) or of an ObjectRef holding it (large); calls that take it are
  submitted once it is done (fed._deferred). No Ray actor call per object.
* ``ActorReceiver`` runs it as an async Ray actor, so that it can be pinned
  to a gateway node (``cross_silo_comm.recv_resource_label``); a receive is
  then the ObjectRef of the actor call that returns the value.

See reps/0060-driver-side-receiver.md.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import threading
import time
from typing import Any, Collection, Coroutine, Iterator, Optional

import ray

from fed._hosts.actor import ActorHost
from fed._hosts.loop_thread import LoopThread
from proxy import PendingReceive, ReceiverProxy, TransportConfig

logger = logging.getLogger("silofed")

Future = concurrent.futures.Future

# Ray copies an argument up to this size into the task itself; a larger
# received value is put in the object store once and passed by reference.
_PUT_ABOVE_BYTES = 100 * 1024


class DriverReceiver:
    """The receiver proxy on the driver's proxy event loop.

    Args:
        config: the transport configuration of this party.
        thread: the loop to run on (shared with a driver-side sender).
    """

    def __init__(self, config: TransportConfig, thread: LoopThread):
        self._thread = thread
        self._proxy = ReceiverProxy(config)
        self._awaited: collections.Counter = collections.Counter()  # receive Futures programs wait on in fed.get
        self._counting = threading.Lock()

    @contextlib.contextmanager
    def program_waiting(self, futures: Collection[Future]) -> Iterator[None]:
        """Mark a program thread as blocked in ``fed.get`` on ``futures`` for the duration.

        Meanwhile, resolving the receive of one of them hands the interpreter
        lock over for a moment, so that the woken program runs at once;
        otherwise the loop keeps it (a program computing in Python, or waiting
        for something else, is not interrupted per message).
        """
        with self._counting:
            self._awaited.update(futures)
        try:
            yield
        finally:
            with self._counting:
                for future in futures:
                    self._awaited[future] -= 1
                    if not self._awaited[future]:
                        del self._awaited[future]

    def _run(self, coro: Coroutine) -> Future:
        return self._thread.run(coro, "receiver")

    def start(self) -> str:
        """Start listening; returns the address.

        Raises:
            TransportError: the address cannot be bound.
        """
        return self._run(self._proxy.start()).result()

    def recv(self, src: str, key: str, producer: str) -> Future:
        """A Future of object ``key`` from ``src``: its value, or an ObjectRef of a large one.

        The Future is resolved by a callback on the loop as the data arrives
        (no coroutine per receive): calls waiting for it are submitted from there.
        """
        received: Future = Future()
        self._thread.post(self._post, src, key, producer, received)
        return received

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
        if size <= _PUT_ABOVE_BYTES:
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
        """``{peer: state}`` once every peer left or after ``timeout_s`` (ReceiverProxy.wait_peers_finished)."""
        return self._run(self._proxy.wait_peers_finished(timeout_s))

    def stats(self) -> Future:
        """Receive figures (ReceiverProxy.stats)."""
        return self._run(self._proxy.stats())

    def timeline(self) -> Future:
        """Recorded receive events (ReceiverProxy.timeline)."""
        return self._run(self._proxy.timeline())

    def close(self, timeout_s: float) -> None:
        """Stop listening and fail receives still waiting (or end them cancelled)."""
        for step in (lambda t: self._run(self._proxy.stop()).result(t), lambda t: self._thread.cancel_group("receiver", t)):
            try:
                step(timeout_s)
            except Exception as exc:
                logger.warning("stopping the receiver failed: %s", exc)


def _hand_over_interpreter() -> None:
    """Release the interpreter lock for a moment (``time.sleep(0)`` does), so that a
    thread the resolved Future woke (the program in ``fed.get``) takes it now rather
    than once this loop thread next waits for I/O. ~25 µs sooner in the tiny-task loop."""
    time.sleep(0)


class ActorReceiver(ActorHost):
    """The receiver proxy as an async Ray actor (pinned with ``recv_resource_label``).

    Args:
        handle: the actor handle.
    """

    def __init__(self, handle: Any):
        super().__init__(handle, "receiver")

    def start(self) -> str:
        """Start listening; returns the address.

        Raises:
            RayTaskError: wrapping the TransportError when the address cannot be bound.
        """
        return ray.get(self.handle.start.remote())

    def program_waiting(self, futures: Collection[Future]) -> contextlib.AbstractContextManager:
        """Nothing to do: the actor's loop does not share this process's interpreter."""
        return contextlib.nullcontext()

    def recv(self, src: str, key: str, producer: str) -> ray.ObjectRef:
        """The ObjectRef of object ``key`` from ``src``."""
        return self.handle.recv.remote(src, key, producer)

    def abort(self, origin: str, cause: str) -> Future:
        """Fail every pending and future receive (ReceiverProxy.abort)."""
        return self.handle.abort.remote(origin, cause).future()

    def peer_seen(self, peer: str) -> None:
        """Tell the liveness watch that ``peer`` answered (ReceiverProxy.peer_seen)."""
        self.handle.peer_seen.remote(peer)

    def wait_peers_finished(self, timeout_s: float) -> Future:
        """``{peer: state}`` once every peer left or after ``timeout_s`` (ReceiverProxy.wait_peers_finished)."""
        return self.handle.wait_peers_finished.remote(timeout_s).future()
