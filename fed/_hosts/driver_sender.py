"""The sender proxy in the driver process, on the proxies' event-loop thread (the default placement).

A send is a coroutine on the loop thread ("silofed-proxies", shared with a
driver-side receiver) that awaits the value and pushes it: no Ray actor call
per send (reps/0050-small-message-latency.md). Two optimisations for small
messages live here and nowhere else:

* a value ``fed.get`` just fetched is serialized by the program thread and
  pushed without reading it from Ray again; ``fed.get`` returns once those
  pushes are handed to gRPC, at most ``ISSUE_WAIT_S`` later
  (reps/0120-get-waits-for-issued-sends.md);
* a send waiting for a Ray object gets it through ``RefGetter``
  (reps/0140-quick-object-gets.md).
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
from typing import Any, Coroutine, Optional, Sequence

from fed._hosts.loop_thread import LoopThread
from fed._hosts.ref_getter import RefGetter
from fed._hosts.value import LocalValue
from proxy import SenderProxy, TransportConfig, dumps

logger = logging.getLogger("silofed")

Future = concurrent.futures.Future

# How long send_fetched waits at most for its pushes to reach gRPC.
ISSUE_WAIT_S = 0.002


class DriverSender:
    """The sender proxy on the driver's proxy event loop.

    Args:
        config: the transport configuration of this party.
        expose_error_trace: send failure details to peers (see SenderProxy).
        thread: the loop to run on (shared with a driver-side receiver).
    """

    def __init__(self, config: TransportConfig, expose_error_trace: bool, thread: LoopThread):
        self._thread = thread
        self._proxy = SenderProxy(config, expose_error_trace)
        self._getter = RefGetter()

    def _run(self, coro: Coroutine) -> Future:
        return self._thread.run(coro, "sender")

    def send(self, dst: str, key: str, producer: str, value: LocalValue) -> Future:
        """Push ``value`` (or its producer's error) to ``dst`` as ``key`` (see base.SenderHost)."""
        return self._run(self._proxy.send(dst, key, producer, [value.fetch(self._getter.value)]))

    def send_fetched(self, dsts: Sequence[str], key: str, producer: str, value: LocalValue,
                     fetched: Any) -> list[Future]:
        """Serialize ``fetched`` now and push it to each of ``dsts``; returns once the pushes are
        handed to gRPC, or after ``ISSUE_WAIT_S`` (see base.SenderHost).

        Serialized here, before ``fed.get`` returns the value to the program,
        which may then change it. A value that does not serialize is sent as
        ``send`` does (the send then reports why).
        """
        pickled = _pickled(fetched)
        if pickled is None:
            return [self.send(dst, key, producer, value) for dst in dsts]
        sends, issued = [], []
        for dst in dsts:
            event = threading.Event()
            sent = self._run(self._proxy.send_pickled(dst, key, producer, *pickled, on_write=event.set))
            sent.add_done_callback(functools.partial(_set_event, event))  # also a push that failed before writing
            sends.append(sent)
            issued.append(event)
        wait_until_issued(issued)
        return sends

    def send_control(self, dst: str, kind: str, cause: str = "", retry_s: float = 2.0) -> Future:
        """Tell ``dst`` that this party aborts (``"abort"``) or finished (``"done"``), retrying ``retry_s``."""
        return self._run(self._proxy.send_control(dst, kind, cause, retry_s))

    def ping(self, dst: str) -> Future:
        """A Future of None if ``dst`` answers, else of why not."""
        return self._run(self._proxy.ping(dst))

    def stats(self) -> Future:
        """A Future of the per-peer send figures (SenderProxy.stats)."""
        return self._run(self._proxy.stats())

    def timeline(self) -> Future:
        """A Future of the recorded send events (SenderProxy.timeline)."""
        return self._run(self._proxy.timeline())

    def close(self, timeout_s: float) -> None:
        """Cancel sends still running (their futures end cancelled) and close the channels."""
        for step in (lambda t: self._thread.cancel_group("sender", t),
                     lambda t: self._run(self._proxy.stop()).result(t)):
            try:
                step(timeout_s)
            except Exception as exc:
                logger.warning("stopping the sender failed: %s", exc)
        self._getter.close()


def _set_event(event: threading.Event, _: Future) -> None:
    event.set()


def wait_until_issued(issued: Sequence[threading.Event]) -> None:
    """Wait (at most ISSUE_WAIT_S in all) until the proxy loop has handed each push to gRPC.

    Otherwise the program, running on as soon as fed.get returns, holds the
    interpreter lock while the loop thread waits for it to start the pushes:
    the peers, perhaps waiting for this value, would wait longer (REP 0120).
    """
    deadline = time.monotonic() + ISSUE_WAIT_S
    for event in issued:
        if not event.wait(max(0.0, deadline - time.monotonic())):
            return


def _pickled(value: Any) -> Optional[tuple[bytes, list]]:
    """``(data, buffers)`` of ``value``, or None if it does not serialize.

    Writable buffers are copied: the program may change them once fed.get
    returned (those of large values come read-only from the object store).
    """
    try:
        data, buffers = dumps(value)
    except Exception:
        return None
    return data, [b if b.readonly else bytes(b) for b in buffers]
