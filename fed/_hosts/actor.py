"""What a proxy run as an async Ray actor offers either host module: figures, events, stopping."""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any

import ray

logger = logging.getLogger("silofed")


class ActorHost:
    """A proxy actor behind the Future-returning interface the job uses.

    Args:
        handle: the actor handle.
        what: "sender" or "receiver", for log messages.
    """

    def __init__(self, handle: Any, what: str):
        self.handle = handle
        self._what = what

    def stats(self) -> concurrent.futures.Future:
        """The proxy's figures (its ``stats``)."""
        return self.handle.stats.remote().future()

    def timeline(self) -> concurrent.futures.Future:
        """The proxy's recorded events (its ``timeline``)."""
        return self.handle.timeline.remote().future()

    def close(self, timeout_s: float) -> None:
        """Stop the proxy (channels closed, server stopped) and kill the actor."""
        try:
            ray.get(self.handle.stop.remote(), timeout=timeout_s)
        except Exception as exc:
            logger.warning("stopping the %s proxy failed: %s", self._what, exc)
        ray.kill(self.handle)
