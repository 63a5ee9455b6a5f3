"""The seam between the programming model and the transport: what a sender host and a receiver host do.

A *host* runs one of this party's proxies (``proxy.SenderProxy``,
``proxy.ReceiverProxy``) somewhere and offers it to the job through the
interfaces below. There are two placements, each implementing both:

* in the driver process, on one event-loop thread (``driver_sender``,
  ``driver_receiver``; the default: REP 0050, 0060), and
* as Ray actors, which can be pinned to a gateway node (``actor``; with
  ``cross_silo_comm.send_resource_label`` / ``recv_resource_label``).

Callers never ask which one they hold. Every operation that talks to a
proxy returns a ``concurrent.futures.Future``; values are ``LocalValue``\\ s.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Optional, Protocol, Sequence

from fed._hosts.value import LocalValue

Future = concurrent.futures.Future


class SenderHost(Protocol):
    """Pushes this party's objects and control messages to peers."""

    def send(self, dst: str, key: str, producer: str, value: LocalValue) -> Future:
        """Push ``value`` (or, if producing it failed, that error) to ``dst`` as object ``key``.

        Returns at once. The Future resolves to ``(payload_bytes, error_sent)``
        once ``dst`` acknowledged it, or fails with the transport's error;
        cancelling it stops the push.
        """
        ...

    def send_fetched(self, dsts: Sequence[str], key: str, producer: str, value: LocalValue,
                     fetched: Any) -> list[Future]:
        """Push ``value``, which the program has just fetched here as ``fetched``, to each of ``dsts``.

        For ``fed.get`` of one object owned here. A placement may send
        ``fetched`` rather than read ``value`` again, and may block for a
        bounded moment (~2 ms) until the pushes are handed to the transport.
        Returns one Future per destination, as ``send``.
        """
        ...

    def send_control(self, dst: str, kind: str, cause: str = "", retry_s: float = 2.0) -> Future:
        """Tell ``dst`` that this party aborts (``"abort"``, with ``cause``) or finished (``"done"``).

        Retries for ``retry_s`` seconds while ``dst`` is unreachable.
        """
        ...

    def ping(self, dst: str) -> Future:
        """A Future of None if ``dst`` answers, else of why not."""
        ...

    def stats(self) -> Future:
        """A Future of the per-peer send figures (``SenderProxy.stats``)."""
        ...

    def timeline(self) -> Future:
        """A Future of the recorded send events (``SenderProxy.timeline``)."""
        ...

    def close(self, timeout_s: float) -> None:
        """Cancel the sends still running and stop the proxy, waiting at most ``timeout_s`` per step."""
        ...


class ReceiverHost(Protocol):
    """Receives peers' objects and tells what it knows of the peers."""

    def recv(self, src: str, key: str, producer: str) -> LocalValue:
        """Post the receive of object ``key`` from ``src``; returns its value-to-be at once."""
        ...

    def wait(self, values: Sequence[LocalValue], timeout: Optional[float]) -> list[Any]:
        """The program's wait in ``fed.get``: the values behind ``values``, waiting at most ``timeout``.

        Raises:
            TimedOut, ReceiveCancelled: see ``value.wait_for_values``.
            the first failure among the values, untranslated.
        """
        ...

    def abort(self, origin: str, cause: str) -> Future:
        """Fail every pending and future receive: ``origin`` aborted the job because of ``cause``."""
        ...

    def peer_seen(self, peer: str) -> None:
        """Tell the liveness watch that ``peer`` answered (it is then watched with the shorter timeout)."""
        ...

    def wait_peers_finished(self, timeout_s: float) -> Future:
        """A Future of ``{peer: state}`` once every peer left the job, or after ``timeout_s``."""
        ...

    def stats(self) -> Future:
        """A Future of the receive figures (``ReceiverProxy.stats``)."""
        ...

    def timeline(self) -> Future:
        """A Future of the recorded receive events (``ReceiverProxy.timeline``)."""
        ...

    def close(self, timeout_s: float) -> None:
        """Stop listening and fail the receives still waiting."""
        ...
