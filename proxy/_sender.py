"""The sender proxy: pushes objects to other parties.

It runs on any asyncio event loop: a thread of the driver by default, or an
async Ray actor pinned to a gateway node (reps/0050-small-message-latency.md).
Each ``send`` awaits the object in this party's object store, serializes it
with out-of-band buffers and streams it in bounded chunks over one
client-streaming call, or, if it is small, sends it as one message on the
peer's long-lived stream (proxy._peer_stream). Unreachable peers are retried
with backoff until the connect timeout; a busy receiver is retried until it
has room.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import time
import traceback
from typing import Any, Awaitable, Callable, Iterable, Optional, Sequence

import grpc

from proxy import _wire_pb2 as wire
from proxy._config import TransportConfig
from proxy._metrics import MetricsLoop
from proxy._peer_stream import PeerStream
from proxy._serialization import dumps, iter_chunks
from proxy._service import (
    ADMITTED,
    PING,
    PROTOCOL_VERSION,
    PUSH,
    REASON_KEY,
    SMALL_PAYLOAD_BYTES,
    encode_chunk,
    keepalive_options,
    message_options,
    open_channel,
    serialize_frame,
)
from proxy._stats import EventLog, LatencyWindow
from proxy.errors import PeerFailure, RemoteFailure, TransportError, iter_causes

logger = logging.getLogger("silofed.proxy")

_KIND_NAMES = {wire.DATA: "data", wire.ERROR: "error", wire.ABORT: "abort", wire.DONE: "done"}
_COUNTER_METRICS = (("sent", "silofed_sent_messages"), ("sent_bytes", "silofed_sent_bytes"),
                    ("retries", "silofed_send_retries"), ("busy", "silofed_send_busy"),
                    ("failed", "silofed_send_failures"))
_COUNTER_KEYS = ("sent", "sent_bytes", "retries", "busy", "duplicates", "failed", "in_flight", "control",
                 "send_ms_total")

# Push streams open at once per destination. A receiver holds a stream it
# cannot admit yet (reps/0030-flow-control.md); this bounds what gRPC buffers
# for held streams (about one flow-control window each) and the retry load.
_MAX_STREAMS_PER_PEER = 256


def _retryable(err: grpc.aio.AioRpcError) -> bool:
    """Worth retrying until the connect timeout: the peer is not up yet, its
    address still serves the previous job of a process running jobs one after
    another, or the stream broke under a write.

    A write on a stream the peer's server dropped (it stopped, say) fails with
    gRPC's own "INTERNAL: Internal error from Core", without a reason from our
    receiver, whose refusals always carry one. The message may or may not have
    arrived; sent again, the receiver answers DUPLICATE if it had.
    """
    if err.code() == grpc.StatusCode.UNAVAILABLE:
        return True
    reason = dict(err.trailing_metadata() or ()).get(REASON_KEY)
    if err.code() == grpc.StatusCode.INTERNAL and reason is None:
        return True
    return reason == "wrong_job"


def _failure_hint(err: grpc.aio.AioRpcError) -> str:
    """What a final send failure means, where gRPC's own words do not say it."""
    if err.code() == grpc.StatusCode.UNIMPLEMENTED:
        return "; the peer runs an older silofed: run the same version at every party"
    if err.code() == grpc.StatusCode.INTERNAL and _retryable(err):
        return ("; the connection to the peer kept breaking while sending (is its process stopping or "
                "restarting? a proxy or load balancer cutting streams?)")
    return ""


def _find_forwarded_failure(exc: BaseException) -> Optional[Exception]:
    """The failure from another party (or an abort) this error descends from, if any.

    It is forwarded unchanged so that its origin party and cause survive any
    number of hops.
    """
    return next((e for e in iter_causes(exc) if isinstance(e, (RemoteFailure, PeerFailure))), None)


def _root_cause(exc: BaseException) -> BaseException:
    return next(iter_causes(exc), exc)


async def _stream(call: grpc.aio.StreamUnaryCall, header: wire.Header, chunks: Iterable[memoryview],
                  on_write: Optional[Callable[[], None]] = None) -> wire.Ack:
    """One Push: the header, then -- once the receiver admitted it -- the chunks.

    The receiver sends ``ADMITTED`` as initial metadata when it admits the
    message (reps/0001); without it the call is ending (DUPLICATE, BUSY or a
    refusal). Waiting for it before writing the chunks means a refusal (too
    large, wrong job, ...) ends the call before any chunk is in flight: a write
    racing with the refusal would make gRPC replace the receiver's status with
    "INTERNAL: Internal error from Core", losing the reason.
    """
    try:
        if on_write is not None:
            on_write()
        await call.write(wire.Frame(header=header))
        if tuple(await call.initial_metadata() or ()) == ADMITTED:  # else it answered or refused already
            for view in chunks:
                await call.write(encode_chunk(view))
        await call.done_writing()
    except asyncio.InvalidStateError:  # the call ended while writing: its status says why
        pass
    return await call


class SenderProxy:
    """Sends objects to other parties.

    Args:
        config: the transport configuration of this party.
        expose_error_trace: send failure messages and tracebacks to peers
            instead of only the exception type.
    """

    def __init__(self, config: TransportConfig, expose_error_trace: bool = False):
        self._cfg = config
        self._expose = expose_error_trace
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._streams: dict[str, PeerStream] = {}  # small messages, one long-lived call per peer
        # numbers of DATA and ERROR messages per destination, taken at the first try (reps/0130)
        self._numbers: collections.defaultdict[str, itertools.count] = collections.defaultdict(
            lambda: itertools.count(1))
        self._stopped = False
        self._stats: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._latency: dict[str, LatencyWindow] = collections.defaultdict(LatencyWindow)
        self._events = EventLog()
        self._metrics = MetricsLoop(config.party, config.job, self._metric_snapshot, config.metrics_interval_s)
        self._exported: dict[str, int] = {}
        self._metrics_started = False
        self._slots: dict[str, asyncio.Semaphore] = collections.defaultdict(
            lambda: asyncio.Semaphore(_MAX_STREAMS_PER_PEER))

    async def send(self, dst: str, key: str, producer: str, wrapped: Sequence[Any]) -> tuple[int, bool]:
        """Send the value of ``wrapped[0]`` (an ObjectRef) to ``dst`` as ``key``.

        The ref is wrapped in a list so that a failed task reaches this method:
        its error is then sent in place of the value.

        Returns:
            the number of payload bytes sent, and True if an error was sent
            in place of the value.

        Raises:
            TransportError: the peer refused the message or stayed unreachable.
        """
        kind = wire.DATA
        try:
            value = await wrapped[0]
        except Exception as exc:  # the producing task failed: send its error
            kind, value = wire.ERROR, self._failure(exc, producer)
        data, buffers = dumps(value)
        return await self._push(dst, key, producer, kind, data, buffers), kind == wire.ERROR

    async def send_pickled(self, dst: str, key: str, producer: str, data: bytes,
                           buffers: Sequence[memoryview], on_write: Optional[Callable[[], None]] = None
                           ) -> tuple[int, bool]:
        """Send a value already serialized by ``proxy.dumps`` (``data`` and its buffers).

        ``on_write``, if given, is called on the loop as the first write of the
        push is handed to gRPC (not called if the push fails before).
        Returns and raises as ``send``.
        """
        return await self._push(dst, key, producer, wire.DATA, data, list(buffers), on_write=on_write), False

    async def send_control(self, dst: str, kind: str, cause: str = "", retry_s: float = 2.0) -> None:
        """Tell ``dst`` that this party aborts the job (``kind="abort"``) or finished it (``"done"``)."""
        code = {"abort": wire.ABORT, "done": wire.DONE}[kind]
        await self._push(dst, kind, "", code, cause.encode("utf-8"), [], retry_s=retry_s)

    async def ping(self, dst: str, timeout_s: float = 1.0) -> Optional[str]:
        """Ping ``dst``; returns None if it answered, else why not."""
        call = self._channel(dst).unary_unary(
            PING,
            request_serializer=wire.PingRequest.SerializeToString,
            response_deserializer=wire.PingReply.FromString,
        )
        try:
            await call(wire.PingRequest(job=self._cfg.job, src=self._cfg.party), timeout=timeout_s)
        except grpc.aio.AioRpcError as err:
            return f"{err.code().name}: {err.details()}"
        return None

    async def stats(self) -> dict:
        """Per-peer figures: ``{peer: {...}}``.

        Each peer's dict has ``sent`` (messages delivered), ``sent_bytes``,
        ``retries`` (pushes retried, peer unreachable), ``busy`` (pushes the
        peer answered busy), ``duplicates`` (delivered before), ``failed``
        (sends failed for good), ``in_flight`` (sends not yet acknowledged),
        ``control`` (abort/done messages, not counted as sent), ``send_ms_total``
        and ``latency_ms``: ``{"count", "window", "mean_ms",
        "max_ms", "p50_ms", "p90_ms", "p99_ms"}`` of the send durations (from
        the start of the push to the ack; percentiles over the last
        ``window`` sends, absent before the first send).
        """
        out = {}
        for dst, c in self._stats.items():
            figures: dict[str, Any] = {k: c[k] for k in _COUNTER_KEYS}
            figures["latency_ms"] = self._latency[dst].summary()
            out[dst] = figures
        return out

    async def timeline(self) -> dict:
        """The recorded send events (at most the last 100k) and how many were dropped.

        Returns:
            ``{"events": [(name, start_s, duration_s, peer, key, producer,
            kind, bytes, retries, outcome), ...], "dropped": n}`` with wall-clock
            start times (``time.time()``).
        """
        return {"events": self._events.snapshot(), "dropped": self._events.dropped}

    async def stop(self) -> None:
        """Close every channel (and export the last figures as Ray metrics); sends
        still running, and later ones, fail with a TransportError."""
        self._stopped = True
        self._metrics.stop()
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    # -- internals -----------------------------------------------------------

    def _metric_snapshot(self) -> tuple:
        counters: dict = {m: {} for _, m in _COUNTER_METRICS}
        gauges: dict = {"silofed_sends_in_flight": {}}
        samples: dict = {"silofed_send_latency_seconds": {}}
        for dst, c in self._stats.items():
            tags = (("peer", dst),)
            for key, metric in _COUNTER_METRICS:
                counters[metric][tags] = c[key]
            gauges["silofed_sends_in_flight"][tags] = c["in_flight"]
            window = self._latency[dst]
            samples["silofed_send_latency_seconds"][tags] = window.since(self._exported.get(dst, 0))
            self._exported[dst] = window.count
        return counters, gauges, samples

    def _failure(self, exc: BaseException, producer: str) -> Exception:
        known = _find_forwarded_failure(exc)
        if known is not None:
            return known
        cause = _root_cause(exc)
        exc_type = f"{type(cause).__module__}.{type(cause).__qualname__}"
        full = "".join(traceback.format_exception(cause))
        detail = full if self._expose else None
        logger.error("task %s failed at party %s; sending %s to peers (%s):\n%s", producer, self._cfg.party,
                     exc_type, "with details" if self._expose else "redacted", full)
        return RemoteFailure(self._cfg.party, producer, exc_type, detail)

    def _answered_before(self, dst: str) -> bool:
        """True if ``dst`` acknowledged a message before: if it no longer answers, it has
        stopped (e.g. finished its program), so an abort or done is not worth retrying."""
        c = self._stats[dst]
        return c["sent"] + c["control"] + c["duplicates"] > 0

    def _stopped_error(self, dst: str, key: str, producer: str) -> TransportError:
        return TransportError(f"sending object {key} ({producer}) to party {dst!r}: the sender proxy was stopped",
                              peer=dst, key=key)

    def _channel(self, dst: str) -> grpc.aio.Channel:
        channel = self._channels.get(dst)
        if channel is None:
            if dst not in self._cfg.peers:
                raise TransportError(f"party {dst!r} is not a party of job {self._cfg.job!r}", peer=dst)
            options = (message_options(self._cfg.chunk_bytes)
                       + keepalive_options(self._cfg.ping_interval_s, self._cfg.peer_timeout_s)
                       + tuple(self._cfg.grpc_options))
            channel = open_channel(self._cfg.peers[dst], self._cfg.tls, options, party=dst)
            self._channels[dst] = channel
        return channel

    async def _push(self, dst: str, key: str, producer: str, kind: wire.Kind, data: bytes,
                    buffers: Sequence[memoryview], retry_s: Optional[float] = None,
                    on_write: Optional[Callable[[], None]] = None) -> int:
        if self._stopped:
            raise self._stopped_error(dst, key, producer)
        header = wire.Header(
            version=PROTOCOL_VERSION,
            job=self._cfg.job,
            src=self._cfg.party,
            dst=dst,
            key=key,
            kind=kind,
            producer=producer,
            pickle_size=len(data),
            buffer_sizes=[b.nbytes for b in buffers],
        )
        total = header.pickle_size + sum(header.buffer_sizes)
        if total > self._cfg.max_message_bytes:
            raise TransportError(
                f"object {key} ({producer}) is {total} bytes, over the limit of "
                f"{self._cfg.max_message_bytes}; raise cross_silo_comm.messages_max_size_in_bytes",
                peer=dst, key=key,
            )
        parts: list[bytes | memoryview] = [data, *buffers]
        chunk = self._cfg.chunk_bytes
        channel = self._channel(dst)
        if kind == wire.DATA or kind == wire.ERROR:
            header.seq = next(self._numbers[dst])
        push: Callable[[], Awaitable[wire.Ack]]
        if total <= min(SMALL_PAYLOAD_BYTES, chunk):
            small = wire.Small(header=header, payload=b"".join(parts))
            peer_stream = self._streams.get(dst)
            if peer_stream is None:
                peer_stream = self._streams[dst] = PeerStream(channel)
            push = functools.partial(peer_stream.push, small, on_write)
        else:
            method = channel.stream_unary(PUSH, request_serializer=serialize_frame,
                                          response_deserializer=wire.Ack.FromString)

            async def push_frames() -> wire.Ack:
                return await _stream(method(), header, iter_chunks(parts, chunk), on_write)

            push = push_frames
        stats = self._stats[dst]
        if not self._metrics_started:
            self._metrics_started = True
            self._metrics.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._cfg.connect_timeout_s if retry_s is None else retry_s)
        delay = 0.05
        busy_delay = 0.01
        wall = time.time()
        started = time.monotonic()
        tries = 0
        stats["in_flight"] += 1
        try:
            while True:
                tries += 1
                if self._stopped:  # between tries: the channel is closed
                    raise self._stopped_error(dst, key, producer)
                try:
                    async with self._slots[dst]:
                        ack = await push()
                except grpc.aio.AioRpcError as err:
                    if self._stopped:
                        raise self._stopped_error(dst, key, producer) from None
                    control = kind == wire.ABORT or kind == wire.DONE
                    if err.code() is grpc.StatusCode.CANCELLED and not control:
                        # The receiver ended the stream before reading it all: it
                        # answered BUSY while we were still writing (a local
                        # cancellation raises CancelledError instead). Same as BUSY.
                        # (Control messages are never held, so for them it means
                        # the peer's server is stopping.)
                        ack = wire.Ack(status=wire.BUSY)
                    elif (_retryable(err) and loop.time() < deadline
                          and not (control and self._answered_before(dst))):
                        stats["retries"] += 1
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 0.25)
                        continue
                    else:
                        stats["failed"] += 1
                        hint = _failure_hint(err)
                        self._events.append(("send", wall, time.monotonic() - started, dst, key, producer,
                                             _KIND_NAMES.get(kind, "?"), total, tries - 1,
                                             f"failed: {err.code().name}"))
                        raise TransportError(
                            f"sending object {key} ({producer}) to party {dst!r} at {self._cfg.peers[dst]} "
                            f"failed: {err.code().name}: {err.details()}{hint}",
                            peer=dst, key=key, code=err.code().name,
                        ) from None
                if ack.status == wire.BUSY:
                    # The receiver already held the stream while its budget was
                    # full (reps/0030), so retry soon: it admits the message as
                    # soon as room frees or the receive is posted.
                    stats["busy"] += 1
                    await asyncio.sleep(busy_delay)
                    busy_delay = min(busy_delay * 2, 0.2)
                    deadline = loop.time() + self._cfg.connect_timeout_s
                    continue
                break
        finally:
            stats["in_flight"] -= 1
        elapsed = time.monotonic() - started
        if ack.status == wire.DUPLICATE:
            stats["duplicates"] += 1
        if kind == wire.ABORT or kind == wire.DONE:  # not data: the receiver does not count them either
            stats["control"] += 1
        else:
            stats["sent"] += 1
            stats["sent_bytes"] += total
            stats["send_ms_total"] += int(elapsed * 1000)
            self._latency[dst].add(elapsed)
        self._events.append(("send", wall, elapsed, dst, key, producer, _KIND_NAMES.get(kind, "?"), total,
                             tries - 1, "duplicate" if ack.status == wire.DUPLICATE else "ok"))
        return total
