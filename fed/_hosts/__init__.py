"""Where this party's proxies run: the seam between the programming model and the transport.

``fed`` talks to the transport only through this package: ``start_hosts``
places the sender and receiver proxies (each in the driver process, or as a
Ray actor) and returns them behind the ``SenderHost`` / ``ReceiverHost``
interfaces of ``base``; values are ``LocalValue``\\ s. See docs/architecture.md.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from fed._hosts.actor import ActorReceiver, ActorSender, start_proxy_actor
from fed._hosts.base import ReceiverHost, SenderHost
from fed._hosts.driver_receiver import DriverReceiver
from fed._hosts.driver_sender import DriverSender
from fed._hosts.loop_thread import LoopThread
from fed._hosts.value import LocalValue, ReceiveCancelled, TimedOut
from proxy import ReceiverProxy, SenderProxy, TransportConfig

__all__ = ["Hosts", "LocalValue", "ReceiveCancelled", "ReceiverHost", "SenderHost", "TimedOut", "start_hosts"]

logger = logging.getLogger("silofed")


class Hosts:
    """This party's running sender and receiver, and the loop thread of those in the driver.

    Attributes:
        sender: the sender host.
        receiver: the receiver host.
    """

    def __init__(self, sender: SenderHost, receiver: ReceiverHost, thread: Optional[LoopThread]):
        self.sender = sender
        self.receiver = receiver
        self._thread = thread

    def close(self, timeout_s: float) -> None:
        """Stop the receiver, then the sender, then the loop thread (each waits at most ``timeout_s``)."""
        self.receiver.close(timeout_s)
        self.sender.close(timeout_s)
        if self._thread is not None:
            self._thread.stop(timeout_s)


def start_hosts(transport: TransportConfig, *, expose_error_trace: bool,
                send_resources: Optional[dict[str, float]], recv_resources: Optional[dict[str, float]],
                start_timeout_s: float) -> Hosts:
    """Start this party's receiver (listening) and sender where the config places them.

    A proxy given resources runs as a named Ray actor holding them; otherwise
    it runs in this process. On failure, whatever was started is stopped
    again (no thread, port or actor is left behind) before the error propagates.

    Args:
        transport: the transport configuration of this party.
        expose_error_trace: send failure details to peers.
        send_resources: Ray resources of the sender actor, or None (in the driver).
        recv_resources: Ray resources of the receiver actor, or None (in the driver).
        start_timeout_s: how long a proxy may take to start.

    Raises:
        ConfigError: a proxy actor could not be created or placed.
        proxy.TransportError: the receiver cannot listen on its address.
    """
    prefix = f"silofed:{transport.job}:{transport.party}"
    thread = None if send_resources and recv_resources else LoopThread("silofed-proxies")
    started: list[Any] = []
    try:
        receiver: ReceiverHost
        if recv_resources:
            receiver = ActorReceiver(start_proxy_actor(ReceiverProxy, f"{prefix}:receiver", recv_resources,
                                                       (transport,), "start", start_timeout_s))
            started.append(receiver)
        else:
            assert thread is not None
            driver_receiver = DriverReceiver(transport, thread)
            started.append(driver_receiver)
            driver_receiver.start(start_timeout_s)
            receiver = driver_receiver
        sender: SenderHost
        if send_resources:
            sender = ActorSender(start_proxy_actor(SenderProxy, f"{prefix}:sender", send_resources,
                                                   (transport, expose_error_trace), "stats", start_timeout_s))
        else:
            assert thread is not None
            sender = DriverSender(transport, expose_error_trace, thread)
    except BaseException:
        for host in started:
            host.close(5)
        if thread is not None:
            thread.stop(5)
        raise
    return Hosts(sender, receiver, thread)
