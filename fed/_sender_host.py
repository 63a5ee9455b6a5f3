"""Where this party's sender proxy runs: a thread of the driver, or a Ray actor.

Both hosts run the same ``proxy.SenderProxy`` and give the job the same
interface, where every operation returns a ``concurrent.futures.Future``.

* ``DriverSender`` (the default) runs it on an event loop in a daemon thread
  of this process: a send is a coroutine scheduled on that loop, which awaits
  the object in the object store and pushes it. No Ray actor call per send.
* ``ActorSender`` runs it as an async Ray actor, so that it can be pinned to
  a gateway node (``cross_silo_comm.send_resource_label``).

See reps/0050-driver-side-sender.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Coroutine

import ray

from proxy import SenderProxy, TransportConfig

logger = logging.getLogger("silofed")

Future = concurrent.futures.Future


class DriverSender:
    """The sender proxy on an event loop in a daemon thread of this process.

    Args:
        config: the transport configuration of this party.
        expose_error_trace: send failure details to peers (see SenderProxy).
    """

    def __init__(self, config: TransportConfig, expose_error_trace: bool):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="silofed-sender", daemon=True)
        self._thread.start()
        self._proxy = SenderProxy(config, expose_error_trace)

    def _run(self, coro: Coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def send(self, dst: str, key: str, producer: str, ref: ray.ObjectRef) -> Future:
        """Push the value of ``ref`` (or its producer's error) to ``dst`` as ``key``."""
        return self._run(self._proxy.send(dst, key, producer, [ref]))

    def send_control(self, dst: str, kind: str, cause: str = "") -> Future:
        """Tell ``dst`` that this party aborts (``"abort"``) or finished (``"done"``)."""
        return self._run(self._proxy.send_control(dst, kind, cause))

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
        """Cancel sends still running (their futures end cancelled), close the channels, stop the thread."""
        for step in (_cancel_other_tasks(), self._proxy.stop()):
            try:
                self._run(step).result(timeout_s)
            except Exception as exc:
                logger.warning("stopping the sender failed: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()


async def _cancel_other_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class ActorSender:
    """The sender proxy as an async Ray actor (pinned with ``send_resource_label``).

    Args:
        handle: the actor handle.
    """

    def __init__(self, handle: Any):
        self.handle = handle

    def send(self, dst: str, key: str, producer: str, ref: ray.ObjectRef) -> Future:
        """Push the value of ``ref`` (or its producer's error) to ``dst`` as ``key``."""
        return self.handle.send.remote(dst, key, producer, [ref]).future()

    def send_control(self, dst: str, kind: str, cause: str = "") -> Future:
        """Tell ``dst`` that this party aborts (``"abort"``) or finished (``"done"``)."""
        return self.handle.send_control.remote(dst, kind, cause).future()

    def ping(self, dst: str) -> Future:
        """None if ``dst`` answers, else why not."""
        return self.handle.ping.remote(dst).future()

    def stats(self) -> Future:
        """Per-peer send figures (SenderProxy.stats)."""
        return self.handle.stats.remote().future()

    def timeline(self) -> Future:
        """Recorded send events (SenderProxy.timeline)."""
        return self.handle.timeline.remote().future()

    def close(self, timeout_s: float) -> None:
        """Close the channels and kill the actor."""
        try:
            ray.get(self.handle.stop.remote(), timeout=timeout_s)
        except Exception as exc:
            logger.warning("stopping the sender proxy failed: %s", exc)
        ray.kill(self.handle)
