"""Where this party's sender proxy runs: a thread of the driver, or a Ray actor.

Both hosts run the same ``proxy.SenderProxy`` and give the job the same
interface, where every operation returns a ``concurrent.futures.Future``.

* ``DriverSender`` (the default) runs it on the event loop of a daemon thread
  of this process ("silofed-proxies", shared with the driver-side receiver):
  a send is a coroutine scheduled on that loop, which awaits the object in
  the object store and pushes it. No Ray actor call per send.
* ``ActorSender`` runs it as an async Ray actor, so that it can be pinned to
  a gateway node (``cross_silo_comm.send_resource_label``).

See reps/0050-small-message-latency.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Coroutine, Optional, Union

import ray

from fed._hosts.actor import ActorHost
from fed._hosts.loop_thread import LoopThread
from fed._hosts.ref_getter import RefGetter
from proxy import SenderProxy, TransportConfig

logger = logging.getLogger("silofed")

Future = concurrent.futures.Future


class DriverSender:
    """The sender proxy on the driver's proxy event loop.

    Args:
        config: the transport configuration of this party.
        expose_error_trace: send failure details to peers (see SenderProxy).
        thread: the loop to run on (shared with a driver-side receiver).
    """

    takes_pickled = True  # send() uses a value serialized by the caller

    def __init__(self, config: TransportConfig, expose_error_trace: bool, thread: LoopThread):
        self._thread = thread
        self._proxy = SenderProxy(config, expose_error_trace)
        self._getter = RefGetter()

    def _run(self, coro: Coroutine) -> Future:
        return self._thread.run(coro, "sender")

    def send(self, dst: str, key: str, producer: str, ref: Union[ray.ObjectRef, Future],
             pickled: Optional[tuple] = None, issued: Optional[threading.Event] = None) -> Future:
        """Push the value of ``ref`` (or its producer's error) to ``dst`` as ``key``.

        ``ref`` may be a Future of the ObjectRef (a call still waiting for its inputs).
        ``pickled``, if given, is the value already serialized by ``proxy.dumps``
        (``(data, buffers)``): it is sent without waiting for Ray, and ``issued``
        (if given) is set once its first write is handed to gRPC or the send ended.
        """
        if pickled is None:
            return self._run(self._proxy.send(dst, key, producer, [self._value_of(ref)]))
        on_write = None if issued is None else issued.set
        sent = self._run(self._proxy.send_pickled(dst, key, producer, *pickled, on_write=on_write))
        if issued is not None:
            sent.add_done_callback(lambda _: issued.set())
        return sent

    async def _value_of(self, ref: Union[ray.ObjectRef, Future]) -> Any:
        if isinstance(ref, Future):
            ref = await asyncio.wrap_future(ref)
        return await self._getter.value(ref)

    def send_control(self, dst: str, kind: str, cause: str = "", retry_s: float = 2.0) -> Future:
        """Tell ``dst`` that this party aborts (``"abort"``) or finished (``"done"``), retrying ``retry_s``."""
        return self._run(self._proxy.send_control(dst, kind, cause, retry_s))

    def ping(self, dst: str) -> Future:
        """None if ``dst`` answers, else why not."""
        return self._run(self._proxy.ping(dst))

    def stats(self) -> Future:
        """Per-peer send figures (SenderProxy.stats)."""
        return self._run(self._proxy.stats())

    def timeline(self) -> Future:
        """Recorded send events (SenderProxy.timeline)."""
        return self._run(self._proxy.timeline())

    def close(self, timeout_s: float) -> None:
        """Cancel sends still running (their futures end cancelled) and close the channels."""
        for step in (lambda t: self._thread.cancel_group("sender", t), lambda t: self._run(self._proxy.stop()).result(t)):
            try:
                step(timeout_s)
            except Exception as exc:
                logger.warning("stopping the sender failed: %s", exc)
        self._getter.close()


class ActorSender(ActorHost):
    """The sender proxy as an async Ray actor (pinned with ``send_resource_label``).

    Args:
        handle: the actor handle.
    """

    takes_pickled = False  # send() reads the value from the object store

    def __init__(self, handle: Any):
        super().__init__(handle, "sender")

    def send(self, dst: str, key: str, producer: str, ref: Union[ray.ObjectRef, Future],
             pickled: Optional[tuple] = None, issued: Optional[threading.Event] = None) -> Future:
        """Push the value of ``ref`` (or its producer's error) to ``dst`` as ``key``.

        ``ref`` may be a Future of the ObjectRef (a call still waiting for its inputs).
        ``pickled`` and ``issued`` are ignored: the actor reads the value from its object store.
        """
        if not isinstance(ref, Future):
            return self.handle.send.remote(dst, key, producer, [ref]).future()
        sent: Future = Future()

        def forward(f: Future) -> None:
            if f.cancelled():
                sent.cancel()
                return
            # a call that failed before reaching Ray is sent as its error, from a task raising it
            ref = f.result() if f.exception() is None else _reraise.remote(f.exception())
            _copy_outcome(self.handle.send.remote(dst, key, producer, [ref]).future(), sent)

        ref.add_done_callback(forward)
        return sent

    def send_control(self, dst: str, kind: str, cause: str = "", retry_s: float = 2.0) -> Future:
        """Tell ``dst`` that this party aborts (``"abort"``) or finished (``"done"``), retrying ``retry_s``."""
        return self.handle.send_control.remote(dst, kind, cause, retry_s).future()

    def ping(self, dst: str) -> Future:
        """None if ``dst`` answers, else why not."""
        return self.handle.ping.remote(dst).future()


@ray.remote(num_cpus=0)
def _reraise(exc: BaseException) -> None:
    raise exc


def _copy_outcome(source: Future, target: Future) -> None:
    """Resolve ``target`` as ``source`` resolves."""
    def copy(f: Future) -> None:
        if f.cancelled():
            target.cancel()
        elif f.exception() is not None:
            target.set_exception(f.exception())
        else:
            target.set_result(f.result())

    source.add_done_callback(copy)
