"""Bounded recording of transfer figures: latency windows and trace events.

Plain state, no I/O, so it is unit-tested without Ray or sockets. Everything
kept here is bounded: a latency window holds the last ``size`` samples, an
event log the last ``maxlen`` events, whatever the length of the job.
"""

from __future__ import annotations

import collections
import math
from typing import Iterable, Sequence

PERCENTILES = (50, 90, 99)
DEFAULT_WINDOW = 1024
DEFAULT_EVENTS = 100_000


class LatencyWindow:
    """The most recent durations of one kind (e.g. sends to one peer).

    Keeps the last ``size`` samples in a ring, plus a count, sum and maximum
    over every sample ever added. Percentiles describe the window, i.e. the
    recent behaviour, not the whole job.

    Args:
        size: how many recent samples to keep (at least 1).
    """

    __slots__ = ("_ring", "_size", "count", "total", "max")

    def __init__(self, size: int = DEFAULT_WINDOW):
        if size < 1:
            raise ValueError(f"a latency window holds at least one sample, not {size}")
        self._ring: list[float] = []
        self._size = size
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        """Record one duration in seconds (O(1))."""
        if len(self._ring) < self._size:
            self._ring.append(seconds)
        else:
            self._ring[self.count % self._size] = seconds
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def samples(self) -> list[float]:
        """The samples in the window, oldest first."""
        if len(self._ring) < self._size:
            return list(self._ring)
        cut = self.count % self._size
        return self._ring[cut:] + self._ring[:cut]

    def since(self, count: int) -> list[float]:
        """Samples added after the first ``count`` ones that are still in the window, oldest first."""
        new = self.count - count
        if new <= 0:
            return []
        return self.samples()[-new:]

    def percentiles(self, qs: Sequence[float] = PERCENTILES) -> dict[float, float]:
        """Nearest-rank percentiles of the window: ``{q: seconds}``; empty if no sample yet."""
        ordered = sorted(self._ring)
        return {q: nearest_rank(ordered, q) for q in qs} if ordered else {}

    def summary(self) -> dict:
        """Figures in milliseconds: count, mean, max (whole job) and p50/p90/p99 (window)."""
        out = {
            "count": self.count,
            "window": len(self._ring),
            "mean_ms": round(self.total / self.count * 1e3, 3) if self.count else 0.0,
            "max_ms": round(self.max * 1e3, 3),
        }
        for q, v in self.percentiles().items():
            out[f"p{q:g}_ms"] = round(v * 1e3, 3)
        return out


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 < q <= 100) of sorted, non-empty ``ordered`` by nearest rank."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class EventLog:
    """The last ``maxlen`` trace events, each a tuple built by the recorder.

    Appending is one deque append; the oldest events are dropped silently
    (``dropped`` counts them).
    """

    __slots__ = ("_events", "appended")

    def __init__(self, maxlen: int = DEFAULT_EVENTS):
        self._events: collections.deque = collections.deque(maxlen=maxlen)
        self.appended = 0

    def append(self, event: tuple) -> None:
        """Record one event."""
        self._events.append(event)
        self.appended += 1

    @property
    def dropped(self) -> int:
        """How many events were dropped because the log was full."""
        return self.appended - len(self._events)

    def snapshot(self) -> list[tuple]:
        """The recorded events, oldest first."""
        return list(self._events)

    def extend(self, events: Iterable[tuple]) -> None:
        """Record several events."""
        for e in events:
            self.append(e)
