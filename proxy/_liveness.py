"""Peer liveness bookkeeping: who answered pings when, and who is gone.

Plain state, no I/O. Liveness is about the peer's process (its receiver
answers pings whatever tasks it runs), not about how long its tasks take.
"""

from __future__ import annotations

from typing import Iterable


class PeerLiveness:
    """Decides which peers are unreachable.

    Args:
        peers: the parties to watch.
        now: the current time (seconds, monotonic).
        peer_timeout_s: a peer seen before and silent this long is gone.
        connect_timeout_s: a peer never seen after this long is gone.
    """

    def __init__(self, peers: Iterable[str], now: float, peer_timeout_s: float, connect_timeout_s: float):
        self._started = now
        self._peer_timeout = peer_timeout_s
        self._connect_timeout = connect_timeout_s
        self._last_seen: dict[str, float | None] = {p: None for p in peers}

    def watched(self) -> list[str]:
        """Peers still watched."""
        return list(self._last_seen)

    def answered(self, peer: str, now: float) -> None:
        """Record that ``peer`` answered a ping at ``now``."""
        if peer in self._last_seen:
            self._last_seen[peer] = now

    def forget(self, peer: str) -> None:
        """Stop watching ``peer`` (it finished or was declared gone)."""
        self._last_seen.pop(peer, None)

    def gone(self, now: float) -> list[tuple[str, str]]:
        """Peers to declare unreachable now, each with the reason."""
        out = []
        for peer, seen in self._last_seen.items():
            if seen is None and now - self._started > self._connect_timeout:
                out.append((peer, f"it never answered in {self._connect_timeout:.0f} s; is it started, "
                                  "and is its address right?"))
            elif seen is not None and now - seen > self._peer_timeout:
                out.append((peer, f"it stopped answering pings {now - seen:.1f} s ago "
                                  f"(peer timeout {self._peer_timeout:.0f} s)"))
        return out
