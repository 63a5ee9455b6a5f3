"""Export the proxies' figures as Ray metrics (``ray.util.metrics``).

The proxies count in plain Python on their hot paths; an exporter turns a
snapshot of those counts into Ray metric updates every few seconds (counters
get the increase since the last export, gauges the current value, the latency
histogram the samples recorded since). Ray's metrics agent then serves them to
Prometheus like any other Ray metric. Every metric has the tags ``party``
(this party), ``peer`` and ``job``; names start with ``silofed_``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Mapping, Optional, Sequence

logger = logging.getLogger("silofed.proxy")

TAGS = ("party", "peer", "job")
LATENCY_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]

COUNTERS = {
    "silofed_sent_messages": "Objects sent to the peer (each delivered push).",
    "silofed_sent_bytes": "Payload bytes sent to the peer.",
    "silofed_send_retries": "Pushes to the peer retried because it was unreachable.",
    "silofed_send_busy": "Pushes the peer answered busy (its receive buffer was full).",
    "silofed_send_failures": "Sends to the peer that failed for good.",
    "silofed_received_messages": "Objects received from the peer.",
    "silofed_received_bytes": "Payload bytes received from the peer.",
    "silofed_rejected_messages": (
        "Messages this party's receiver refused (tag reason; peer is the claimed sender or '?')."
    ),
}
GAUGES = {
    "silofed_buffered_bytes": "Bytes received but not yet asked for, at this party.",
    "silofed_peak_buffered_bytes": "Peak of buffered plus reserved bytes at this party.",
    "silofed_sends_in_flight": "Sends to the peer started and not yet acknowledged.",
}
HISTOGRAMS = {
    "silofed_send_latency_seconds": "Duration of a send to the peer, from the start of the push to the ack.",
}

Snapshot = Mapping[str, Mapping[tuple, float]]
Samples = Mapping[str, Mapping[tuple, Sequence[float]]]


class RayMetricsExporter:
    """Pushes snapshots of counts to Ray metrics.

    Args:
        party: this party (the ``party`` tag).
        job: the job name (the ``job`` tag).
    """

    def __init__(self, party: str, job: str):
        from ray.util import metrics

        self._base = {"party": party, "job": job}
        extra = {"silofed_rejected_messages": ("reason",)}
        self._counters = {n: metrics.Counter(n, description=d, tag_keys=TAGS + extra.get(n, ()))
                          for n, d in COUNTERS.items()}
        self._gauges = {n: metrics.Gauge(n, description=d, tag_keys=TAGS) for n, d in GAUGES.items()}
        self._histograms = {n: metrics.Histogram(n, description=d, boundaries=LATENCY_BUCKETS_S, tag_keys=TAGS)
                            for n, d in HISTOGRAMS.items()}
        self._last: dict[tuple[str, tuple], float] = {}

    def export(self, counters: Snapshot, gauges: Snapshot, samples: Samples) -> None:
        """Apply one snapshot.

        Args:
            counters: ``{name: {tags: running total}}``; tags is a tuple of
                ``(key, value)`` pairs besides party and job.
            gauges: ``{name: {tags: current value}}``.
            samples: ``{name: {tags: [new samples]}}`` for histograms.
        """
        for name, series in counters.items():
            counter = self._counters[name]
            for tags, total in series.items():
                delta = total - self._last.get((name, tags), 0)
                if delta > 0:
                    counter.inc(delta, tags={**self._base, **dict(tags)})
                    self._last[(name, tags)] = total
        for name, series in gauges.items():
            gauge = self._gauges[name]
            for tags, value in series.items():
                gauge.set(value, tags={**self._base, **dict(tags)})
        for name, sample_series in samples.items():
            histogram = self._histograms[name]
            for tags, values in sample_series.items():
                full = {**self._base, **dict(tags)}
                for v in values:
                    histogram.observe(v, tags=full)


def _in_ray() -> bool:
    try:
        import ray

        return ray.is_initialized()
    except Exception:  # metrics are best effort: never stop the transport
        return False


class MetricsLoop:
    """Exports a proxy's ``snapshot()`` as Ray metrics every ``interval_s`` seconds, inside Ray only.

    The exporter (and its metrics) is created at the first export, not when
    the proxy starts, so that registering metrics does not delay ``fed.init``.

    Args:
        party: this party (the ``party`` tag).
        job: the job name (the ``job`` tag).
        snapshot: returns ``(counters, gauges, samples)`` for ``RayMetricsExporter.export``.
        interval_s: seconds between exports; 0 disables the export.
    """

    def __init__(self, party: str, job: str, snapshot: Callable[[], tuple], interval_s: float):
        self._party, self._job, self._snapshot, self._interval = party, job, snapshot, interval_s
        self._exporter: Optional[RayMetricsExporter] = None
        self._task: Optional[asyncio.Task] = None
        self._broken = False

    def start(self) -> None:
        """Start exporting (call from the event loop; a no-op if disabled, outside Ray or started)."""
        if self._task is None and self._interval > 0 and not self._broken and _in_ray():
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        """Stop, after one last export if the loop was started."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self.export_now()

    def export_now(self) -> None:
        """Export the current snapshot (best effort: a failure is logged once and disables the export)."""
        if self._broken:
            return
        try:
            if self._exporter is None:
                self._exporter = RayMetricsExporter(self._party, self._job)
            self._exporter.export(*self._snapshot())
        except Exception as exc:
            self._broken = True
            logger.warning("exporting Ray metrics failed at party %s (disabled): %s", self._party, exc)

    async def _run(self) -> None:
        while not self._broken:
            await asyncio.sleep(self._interval)
            self.export_now()
