"""The receiver proxy: a gRPC server on an asyncio event loop.

It validates each incoming message (a Push stream of chunks, or a small
message on a sending party's PushStream), assembles the payload into one
buffer and hands it to the receive table. ``recv`` returns the rebuilt
object once its data is there.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, NoReturn, Optional

import grpc

from proxy import _wire_pb2 as wire
from proxy._buffers import PayloadBuffers
from proxy._config import TransportConfig
from proxy._identity import identity_mismatch
from proxy._liveness import PeerLiveness
from proxy._metrics import MetricsLoop
from proxy._receive_table import Admission, Arrival, ReceiveTable
from proxy._serialization import loads
from proxy._service import (
    ADMITTED,
    PING,
    PROTOCOL_VERSION,
    REASON_KEY,
    SERVER_KEEPALIVE_OPTIONS,
    SMALL_PAYLOAD_BYTES,
    add_transport_service,
    message_options,
    open_channel,
    server_credentials,
)
from proxy._stats import EventLog
from proxy._stream_answers import StreamAnswers
from proxy.errors import DivergedProducerError, PeerFailure, TransportError, UnpicklingRefusedError

logger = logging.getLogger("silofed.proxy")

# How long an unsolicited message that does not fit the budget is held before
# the receiver answers BUSY (reps/0030-flow-control.md).
_BUSY_HOLD_S = 1.0
# Small messages held for room per sending party; beyond it they are answered
# BUSY at once. An honest sender has at most this many unanswered (proxy._sender).
_MAX_HELD_PER_PEER = 256
# Payloads from this size on are assembled in a mapped, reusable buffer (proxy._buffers).
_MAPPED_FROM = 1 << 20


class _Rejected(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str):
        super().__init__(message)
        self.code = code
        self.reason = reason


def _too_much_data(header: wire.Header, total: int) -> _Rejected:
    return _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "size_mismatch",
                     f"object {header.key} from {header.src!r} carries more data than its header announced "
                     f"({total} bytes)")


def _truncated(header: wire.Header, received: int, total: int) -> _Rejected:
    return _Rejected(grpc.StatusCode.DATA_LOSS, "truncated",
                     f"object {header.key} from {header.src!r} ended after {received} of {total} bytes")


async def _next_frame(frames: AsyncIterator[memoryview | wire.Frame]) -> memoryview | wire.Frame | None:
    """The next frame of a push stream, or None at its end."""
    try:
        return await frames.__anext__()
    except StopAsyncIteration:
        return None
    except grpc.aio.AioRpcError:
        raise
    except Exception as exc:  # a frame that does not decode
        raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "malformed", f"malformed frame: {exc}") from None


@dataclass(frozen=True)
class PendingReceive:
    """A receive posted with ``ReceiverProxy.post``."""

    src: str
    key: str
    producer: str
    wall: float  # when it was posted, time.time()
    started: float  # the same, time.monotonic()
    arrived: "asyncio.Future[Arrival]"


def _parse_small(raw: bytes) -> wire.Small:
    try:
        return wire.Small.FromString(raw)
    except Exception as exc:
        raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "malformed", f"malformed message: {exc}") from None


class ReceiverProxy:
    """Receives objects pushed by other parties. Runs on any asyncio event loop: a driver thread or an async Ray actor.

    Args:
        config: the transport configuration of this party.
    """

    def __init__(self, config: TransportConfig):
        self._cfg = config
        self._table = ReceiveTable(config.unsolicited_budget_bytes)
        self._buffers = PayloadBuffers(config.reuse_buffer_bytes)
        self._server: grpc.aio.Server | None = None
        self._rejected: collections.Counter[str] = collections.Counter()
        # peer -> "running" | "done" | "aborted: ..." | "unreachable: ..."
        self._peer_state: dict[str, str] = {p: "running" for p in config.peers}
        self._peer_changed = asyncio.Event()
        self._liveness: PeerLiveness | None = None
        self._watcher: asyncio.Task | None = None
        self._ping_channels: dict[str, grpc.aio.Channel] = {}
        self._from: dict[str, list[int]] = {p: [0, 0] for p in config.peers}  # src -> [messages, bytes]
        self._events = EventLog()
        self._metrics = MetricsLoop(config.party, config.job, self._metric_snapshot, config.metrics_interval_s)
        self._streams: set[asyncio.Task] = set()  # PushStreams being read
        self._holding: collections.Counter[str] = collections.Counter()  # src -> small messages held for room
        self._stopping: asyncio.Future | None = None  # done once stop() began

    async def start(self) -> str:
        """Start listening; returns the bound address.

        Raises:
            TransportError: the address cannot be bound (e.g. port in use).
        """
        options = (message_options(self._cfg.chunk_bytes) + (("grpc.so_reuseport", 0),) + SERVER_KEEPALIVE_OPTIONS
                   + tuple(self._cfg.grpc_options))
        server = grpc.aio.server(options=options)
        add_transport_service(server, self._push, self._push_stream, self._answer_ping)
        address = self._cfg.listen_address
        cause: RuntimeError | None = None
        try:
            if self._cfg.tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, server_credentials(self._cfg.tls))
        except RuntimeError as exc:
            port, cause = 0, exc
        if not port:
            raise TransportError(
                f"party {self._cfg.party!r} cannot listen on {address}: the port is in use or the "
                "address is not local. Free the port or change this party's address in the config.",
                peer=self._cfg.party,
            ) from cause
        loop = asyncio.get_running_loop()
        self._stopping = loop.create_future()
        await server.start()
        self._server = server
        self._liveness = PeerLiveness(self._cfg.peers, loop.time(), self._cfg.peer_timeout_s,
                                      self._cfg.connect_timeout_s)
        self._watcher = asyncio.ensure_future(self._watch_peers())
        self._metrics.start()
        return address

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop the server and fail receives still waiting (and export the last figures as Ray metrics)."""
        self._metrics.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        for channel in self._ping_channels.values():
            await channel.close()
        self._ping_channels.clear()
        if self._server is not None:
            assert self._stopping is not None  # start() made it before it started the server
            self._stopping.set_result(None)  # ends the PushStreams
            await self._server.stop(grace_s)
            self._server = None
        self._table.fail_all(TransportError("the receiver proxy was stopped", peer=self._cfg.party))
        self._buffers.close()

    async def recv(self, src: str, key: str, producer: str) -> Any:
        """Wait for object ``key`` from ``src`` and return its value.

        Raises:
            as ``recv_sized``.
        """
        value, _ = await self.recv_sized(src, key, producer)
        return value

    async def recv_sized(self, src: str, key: str, producer: str) -> tuple[Any, int]:
        """Wait for object ``key`` from ``src``; returns its value and payload size in bytes.

        Raises:
            as ``value_of``.
        """
        receive = self.post(src, key, producer)
        try:
            await receive.arrived
        except Exception:
            pass  # value_of records and raises it
        return self.value_of(receive)

    def post(self, src: str, key: str, producer: str,
             on_arrival: Optional[Callable[[], None]] = None) -> "PendingReceive":
        """Ask for object ``key`` from ``src`` (on the receiver's loop); once ``arrived`` is
        done, ``value_of`` gives the value. For callers that want a callback, not a coroutine:
        ``on_arrival`` is called as the data is delivered (ReceiveTable.post); ``arrived``'s
        done callbacks cover every ending, one loop turn later."""
        return PendingReceive(src, key, producer, time.time(), time.monotonic(),
                              self._table.post(src, key, on_arrival))

    def value_of(self, receive: "PendingReceive") -> tuple[Any, int]:
        """The value and payload size of a receive from ``post`` whose ``arrived`` is done.

        Raises:
            DivergedProducerError: ``src`` produced the key with another call.
            RemoteFailure: the producing task failed at its origin.
            PeerFailure: ``src`` (or another party) aborted the job.
            UnpicklingRefusedError: the payload is not allowed.
            asyncio.CancelledError: the receive was cancelled.
        """
        src, key, producer = receive.src, receive.key, receive.producer
        waited = time.monotonic() - receive.started
        try:
            arrival = receive.arrived.result()
        except BaseException as exc:
            self._events.append(("recv", receive.wall, waited, src, key, producer, 0, f"failed: {type(exc).__name__}"))
            raise
        self._events.append(("recv", receive.wall, waited, src, key, producer, len(arrival.payload), "ok"))
        if arrival.producer != producer:
            raise DivergedProducerError(key, src, expected=producer, received=arrival.producer)
        view = memoryview(arrival.payload)
        offset = arrival.pickle_size
        buffers = []
        for size in arrival.buffer_sizes:
            buffers.append(view[offset : offset + size])
            offset += size
        try:
            value = loads(view[: arrival.pickle_size], buffers, self._cfg.allowed_globals)
        except UnpicklingRefusedError as exc:
            raise UnpicklingRefusedError(f"object {key} ({producer}) from party {src!r}: {exc}",
                                         peer=src, key=key) from None
        except Exception as exc:  # a corrupt payload must surface as a transport error, not a crash
            raise TransportError(f"object {key} ({producer}) from party {src!r} could not be unpickled "
                                 f"({type(exc).__name__}); is the same silofed version running everywhere?",
                                 peer=src, key=key) from None
        if arrival.kind == wire.ERROR:
            raise value
        return value, len(arrival.payload)

    async def stats(self) -> dict:
        """Counters of this receiver.

        Returns:
            ``received``/``received_bytes`` (objects and payload bytes, all
            sources), ``duplicates``, ``busy_replies`` (pushes answered busy),
            ``buffered_bytes`` (arrived, not yet asked for),
            ``peak_buffered_bytes`` (buffered plus reserved),
            ``rejected`` (``{reason: count}``), ``from``:
            ``{peer: {"received", "received_bytes"}}`` per source party, and
            ``payload_buffers``: ``{"mapped", "reused", "idle_bytes"}``
            (large-payload buffers mapped and reused so far, bytes kept idle).
        """
        s = self._table.stats
        return {
            "received": s.received,
            "received_bytes": s.received_bytes,
            "duplicates": s.duplicates,
            "busy_replies": s.busy_replies,
            "buffered_bytes": s.buffered_bytes,
            "peak_buffered_bytes": s.peak_buffered_bytes,
            "rejected": dict(self._rejected),
            "from": {p: {"received": n, "received_bytes": b} for p, (n, b) in self._from.items()},
            "payload_buffers": {"mapped": self._buffers.mapped, "reused": self._buffers.reused,
                                "idle_bytes": self._buffers.idle_bytes},
        }

    async def timeline(self) -> dict:
        """The recorded receive events (at most the last 100k) and how many were dropped.

        Returns:
            ``{"events": [...], "dropped": n}``; events are
            ``("arrive", start_s, duration_s, src, key, producer, bytes, kind)``
            (the data streamed in, from its header to its last chunk) and
            ``("recv", posted_s, wait_s, src, key, producer, bytes, outcome)``
            (a receive posted until its data was there), with wall-clock
            start times (``time.time()``).
        """
        return {"events": self._events.snapshot(), "dropped": self._events.dropped}

    async def abort(self, origin: str, cause: str) -> None:
        """Fail every pending and future receive: the job is being aborted."""
        self._table.fail_all(PeerFailure(origin, cause))

    async def wait_peers_finished(self, timeout_s: float) -> dict[str, str]:
        """Wait until every peer finished, aborted or is unreachable (at most ``timeout_s``).

        Returns:
            ``{peer: state}`` with state "done", "aborted: ...", "unreachable: ..."
            or "running" for peers still running at the timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(state == "running" for state in self._peer_state.values()):
            left = deadline - loop.time()
            if left <= 0:
                break
            self._peer_changed.clear()
            try:
                await asyncio.wait_for(self._peer_changed.wait(), left)
            except asyncio.TimeoutError:
                break
        return dict(self._peer_state)

    async def peer_seen(self, peer: str) -> None:
        """Count an answer from ``peer`` (e.g. it acknowledged a send) as an answer to a ping."""
        self._saw(peer)

    def _saw(self, peer: str) -> None:
        if self._liveness is not None:
            self._liveness.answered(peer, asyncio.get_running_loop().time())

    async def ready(self) -> bool:
        """Returns True once the actor is up (used as a liveness probe)."""
        return True

    def _metric_snapshot(self) -> tuple:
        s = self._table.stats
        counters = {
            "silofed_received_messages": {(("peer", p),): n for p, (n, _) in self._from.items()},
            "silofed_received_bytes": {(("peer", p),): b for p, (_, b) in self._from.items()},
            "silofed_rejected_messages": {(("peer", "?"), ("reason", r)): n for r, n in self._rejected.items()},
        }
        here = (("peer", ""),)
        gauges = {"silofed_buffered_bytes": {here: s.buffered_bytes},
                  "silofed_peak_buffered_bytes": {here: s.peak_buffered_bytes}}
        return counters, gauges, {}

    # -- gRPC handlers -------------------------------------------------------

    async def _answer_ping(self, request: wire.PingRequest, context: grpc.aio.ServicerContext) -> wire.PingReply:
        if request.job != self._cfg.job:
            await self._reject(context, _Rejected(
                grpc.StatusCode.FAILED_PRECONDITION, "wrong_job",
                f"party {self._cfg.party!r} runs job {self._cfg.job!r}, not {request.job!r}",
            ))
        try:
            self._check_identity(context, request.src)
        except _Rejected as rejected:
            await self._reject(context, rejected)
        return wire.PingReply(job=self._cfg.job, party=self._cfg.party)

    async def _push(self, request_iterator: AsyncIterable[memoryview | wire.Frame],
                    context: grpc.aio.ServicerContext) -> wire.Ack:
        frames = request_iterator.__aiter__()

        async def header() -> wire.Header:
            first = await _next_frame(frames)
            if not isinstance(first, wire.Frame) or first.WhichOneof("body") != "header":
                raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "malformed",
                                "the first frame of a push must be a header")
            return self._checked_header(first.header)

        async def payload(h: wire.Header, total: int) -> memoryview:
            await context.send_initial_metadata(ADMITTED)  # the sender streams the chunks after this
            return await self._read_payload(frames, h, total)

        return await self._receive(context, header, payload)

    async def _push_stream(self, requests: AsyncIterable[bytes], context: grpc.aio.ServicerContext) -> None:
        """PushStream: a sending party's small messages, each answered by an Ack carrying its id.

        A message refused is answered REFUSED (the stream goes on); one that
        does not decode ends the stream. A message that must wait for room
        (reps/0030) waits in a task of its own, so the ones behind it go on.
        OK answers are batched (proxy._stream_answers, reps/0080).
        """
        answers = StreamAnswers(context.write)
        # The sender keeps its stream open for the whole job: when this receiver
        # stops, the handler returns (the stream ends with OK) instead of
        # leaving server.stop to wait out its grace period.
        stopping = self._stopping
        assert stopping is not None  # start() made it before it started the server that calls this
        reading = asyncio.ensure_future(self._read_stream(requests, context, answers))
        self._streams.add(reading)
        try:
            await asyncio.wait((reading, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._streams.discard(reading)
            if not reading.done():
                reading.cancel()
            failure = reading.exception() if reading.done() and not reading.cancelled() else None
            if failure is None:
                try:  # the messages answered OK but not yet told so
                    await answers.flush()
                except Exception as exc:
                    logger.debug("could not write the last answers on a stream: %r", exc)
            answers.close()
        if failure is not None:
            raise failure  # an abort: the stream ends with its status

    async def _read_stream(self, requests: AsyncIterable[bytes], context: grpc.aio.ServicerContext,
                           answers: StreamAnswers) -> None:
        held: set[asyncio.Task] = set()
        verified: set[str] = set()  # parties this call's TLS certificate was checked against (it cannot change)

        async def hold(small: wire.Small, header: wire.Header, total: int, wall: float, started: float) -> None:
            try:
                ack = self._small_arrived(small, header, total, await self._admit(header, total), wall, started)
            except _Rejected as rejected:
                ack = self._refused(small.id, rejected)
            try:
                await answers.answer(ack)
            except Exception as exc:  # the stream ended meanwhile: the sender sends it again
                logger.debug("could not answer message %d of %s: %r", small.id, header.src, exc)

        try:
            async for raw in requests:
                wall, started = time.time(), time.monotonic()
                small = _parse_small(raw)
                control = False
                try:
                    header, total = self._small_header(small, context, verified)
                    control = header.kind in (wire.ABORT, wire.DONE)
                    admission = self._table.admit(header.src, header.key, total, count_busy=False, seq=header.seq)
                    if admission is Admission.BUSY and control:
                        admission = Admission.WANTED  # tiny control messages are never held nor buffered
                    elif admission is Admission.BUSY and self._holding[header.src] >= _MAX_HELD_PER_PEER:
                        # more than an honest sender has unanswered: BUSY at once, hold nothing
                        admission = self._table.admit(header.src, header.key, total, seq=header.seq)
                    elif admission is Admission.BUSY:
                        task = asyncio.ensure_future(hold(small, header, total, wall, started))
                        held.add(task)
                        self._holding[header.src] += 1
                        task.add_done_callback(functools.partial(self._held_done, held, header.src))
                        continue
                    ack = self._small_arrived(small, header, total, admission, wall, started)
                except _Rejected as rejected:
                    ack = self._refused(small.id, rejected)
                # control messages are answered at once: a party shutting down waits for it
                await answers.answer(ack, at_once=control)
        except _Rejected as rejected:  # a message that does not decode: its id is unknown
            await self._reject(context, rejected)
        finally:
            for task in held:
                task.cancel()

    def _held_done(self, held: set, src: str, task: asyncio.Task) -> None:
        held.discard(task)
        self._holding[src] -= 1

    def _small_header(self, small: wire.Small, context: grpc.aio.ServicerContext,
                      verified: set[str]) -> tuple[wire.Header, int]:
        """The checked header of a small message and its payload size (checked before it can be held)."""
        if not small.HasField("header"):
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "malformed", "a small push must carry a header")
        header = self._checked_header(small.header)
        if header.src not in verified:
            self._check_identity(context, header.src)
            verified.add(header.src)
        total = header.pickle_size + sum(header.buffer_sizes)
        if len(small.payload) > total:
            raise _too_much_data(header, total)
        if len(small.payload) < total:
            raise _truncated(header, len(small.payload), total)
        if total > SMALL_PAYLOAD_BYTES:
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "malformed",
                            f"object {header.key} from {header.src!r} is {total} bytes: a PushStream message carries "
                            f"at most {SMALL_PAYLOAD_BYTES}; larger objects go on a Push stream")
        return header, total

    def _small_arrived(self, small: wire.Small, header: wire.Header, total: int, admission: Admission,
                       wall: float, started: float) -> wire.Ack:
        if admission is Admission.DUPLICATE:
            return wire.Ack(id=small.id, status=wire.DUPLICATE)
        if admission is Admission.BUSY:
            return wire.Ack(id=small.id, status=wire.BUSY)
        ack = self._arrived(header, admission, memoryview(small.payload), total, wall, started)
        ack.id = small.id
        return ack

    def _refused(self, msg_id: int, rejected: _Rejected) -> wire.Ack:
        self._count_rejection(rejected)
        return wire.Ack(id=msg_id, status=wire.REFUSED, code=rejected.code.value[0], reason=rejected.reason,
                        detail=str(rejected))

    async def _receive(self, context: grpc.aio.ServicerContext, read_header: Callable[[], Awaitable[wire.Header]],
                       read_payload: Callable[[wire.Header, int], Awaitable[memoryview]]) -> wire.Ack:
        """Validate, admit and deliver one message pushed on a Push stream."""
        wall, started = time.time(), time.monotonic()
        header = None
        admission = None
        total = 0
        try:
            header = await read_header()
            self._check_identity(context, header.src)
            total = header.pickle_size + sum(header.buffer_sizes)
            admission = await self._admit(header, total)
            if admission is Admission.DUPLICATE:
                return wire.Ack(status=wire.DUPLICATE)
            if admission is Admission.BUSY:
                return wire.Ack(status=wire.BUSY)
            payload = await read_payload(header, total)
        except _Rejected as rejected:
            if admission is not None:
                self._table.release(admission, total)
            await self._reject(context, rejected)
        except BaseException:
            if admission is not None:
                self._table.release(admission, total)
            raise
        return self._arrived(header, admission, payload, total, wall, started)

    def _arrived(self, header: wire.Header, admission: Admission, payload: memoryview, total: int,
                 wall: float, started: float) -> wire.Ack:
        """Hand a whole, admitted message to the receive table (or act on a control message)."""
        if header.kind in (wire.ABORT, wire.DONE):
            self._table.release(admission, total)
            self._control(header, bytes(payload).decode("utf-8", "replace"))
            return wire.Ack(status=wire.OK)
        arrival = Arrival(header.kind, header.producer, header.pickle_size, list(header.buffer_sizes), payload)
        self._saw(header.src)
        if self._table.deliver(header.src, header.key, arrival, admission, seq=header.seq):
            counts = self._from[header.src]
            counts[0] += 1
            counts[1] += total
            self._events.append(("arrive", wall, time.monotonic() - started, header.src, header.key,
                                 header.producer, total, "error" if header.kind == wire.ERROR else "data"))
        return wire.Ack(status=wire.OK)

    def _control(self, header: wire.Header, cause: str) -> None:
        src = header.src
        if self._liveness is not None:
            self._liveness.forget(src)
        if header.kind == wire.DONE:
            self._set_peer_state(src, "done")
            self._table.fail_from(src, PeerFailure(
                src, "it finished the job without sending this object; do all parties run the same program?"))
            return
        logger.warning("party %s aborted job %s: %s", src, header.job, cause)
        self._set_peer_state(src, f"aborted: {cause}")
        self._table.fail_all(PeerFailure(src, f"it aborted the job: {cause}"))

    def _set_peer_state(self, peer: str, state: str) -> None:
        if self._peer_state.get(peer) == "running":
            self._peer_state[peer] = state
            self._peer_changed.set()

    async def _ping(self, peer: str) -> bool:
        channel = self._ping_channels.get(peer)
        if channel is None:
            channel = open_channel(self._cfg.peers[peer], self._cfg.tls, tuple(self._cfg.grpc_options), party=peer)
            self._ping_channels[peer] = channel
        call = channel.unary_unary(PING, request_serializer=wire.PingRequest.SerializeToString,
                                   response_deserializer=wire.PingReply.FromString)
        try:
            await call(wire.PingRequest(job=self._cfg.job, src=self._cfg.party),
                       timeout=max(self._cfg.ping_interval_s * 2, 0.5))
        except grpc.aio.AioRpcError:
            return False
        return True

    async def _watch_peers(self) -> None:
        loop = asyncio.get_running_loop()
        liveness = self._liveness
        assert liveness is not None  # start() made it before it started this task
        while liveness.watched():
            peers = liveness.watched()
            answers = await asyncio.gather(*(self._ping(p) for p in peers))
            now = loop.time()
            for peer, ok in zip(peers, answers, strict=True):  # gather answers once per peer
                if ok:
                    liveness.answered(peer, now)
            for peer, reason in liveness.gone(now):
                liveness.forget(peer)
                if self._peer_state.get(peer) != "running":
                    continue
                logger.error("party %s is unreachable: %s", peer, reason)
                self._set_peer_state(peer, f"unreachable: {reason}")
                self._table.fail_all(PeerFailure(peer, f"it is unreachable: {reason}"))
            self._buffers.trim()
            await asyncio.sleep(self._cfg.ping_interval_s)

    async def _admit(self, header: wire.Header, total: int) -> Admission:
        """Admit a message, holding it up to ``_BUSY_HOLD_S`` while the budget is full.

        The stream is not read while it is held, so gRPC flow control stops
        the sender; a posted receive or freed room admits it at once. See
        reps/0030-flow-control.md.
        """
        table = self._table
        admission = table.admit(header.src, header.key, total, count_busy=False, seq=header.seq)
        if admission is not Admission.BUSY:
            return admission
        if header.kind in (wire.ABORT, wire.DONE):
            return Admission.WANTED  # tiny control messages are never held nor buffered
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _BUSY_HOLD_S
        while admission is Admission.BUSY:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return table.admit(header.src, header.key, total, seq=header.seq)  # counts the BUSY reply
            change = table.wait_for_change()
            try:
                await asyncio.wait_for(change, remaining)
            except asyncio.TimeoutError:
                pass
            admission = table.admit(header.src, header.key, total, count_busy=False, seq=header.seq)
        return admission

    def _checked_header(self, h: wire.Header) -> wire.Header:
        cfg = self._cfg
        if h.version != PROTOCOL_VERSION:
            raise _Rejected(grpc.StatusCode.FAILED_PRECONDITION, "version",
                            f"wire protocol version {h.version} is not {PROTOCOL_VERSION}; "
                            "run the same silofed version at every party")
        if h.job != cfg.job:
            raise _Rejected(grpc.StatusCode.FAILED_PRECONDITION, "wrong_job",
                            f"message for job {h.job!r} reached party {cfg.party!r}, which runs job {cfg.job!r}; "
                            "check job_name and addresses")
        if h.dst != cfg.party:
            raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "wrong_destination",
                            f"message for party {h.dst!r} reached party {cfg.party!r}; "
                            "check the addresses in the config")
        if h.src not in cfg.peers:
            raise _Rejected(grpc.StatusCode.PERMISSION_DENIED, "unknown_party",
                            f"party {h.src!r} is not a party of job {cfg.job!r}")
        total = h.pickle_size + sum(h.buffer_sizes)
        if total > cfg.max_message_bytes:
            raise _Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, "too_large",
                            f"object {h.key} from {h.src!r} is {total} bytes, "
                            f"over the limit of {cfg.max_message_bytes}; "
                            "raise cross_silo_comm.messages_max_size_in_bytes at the receiving party")
        return h

    async def _read_payload(self, frames: AsyncIterator[memoryview | wire.Frame], header: wire.Header,
                            total: int) -> memoryview:
        payload = self._buffers.take(total) if total >= _MAPPED_FROM else memoryview(bytearray(total))
        view = payload
        filled = 0
        while True:
            frame = await _next_frame(frames)
            if frame is None:
                break
            # parse_frame gives chunks as memoryviews; a chunk from another
            # protobuf encoder may come as a Frame
            if not isinstance(frame, memoryview) and frame.WhichOneof("body") != "chunk":
                raise _Rejected(grpc.StatusCode.INVALID_ARGUMENT, "malformed",
                                f"object {header.key} from {header.src!r}: "
                                "only the first frame of a push may be a header")
            chunk = frame if isinstance(frame, memoryview) else frame.chunk
            if filled + len(chunk) > total:
                raise _too_much_data(header, total)
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        if filled != total:
            raise _truncated(header, filled, total)
        return payload

    def _check_identity(self, context: grpc.aio.ServicerContext, claimed: str) -> None:
        """With TLS, refuse a peer whose certificate is not that of party ``claimed``."""
        if self._cfg.tls is not None:
            why = identity_mismatch(context.auth_context(), claimed, self._cfg.tls.peer_ca.get(claimed))
            if why is not None:
                raise _Rejected(grpc.StatusCode.PERMISSION_DENIED, "identity_mismatch",
                                f"party {self._cfg.party!r} refused a message: {why}")

    def _count_rejection(self, rejected: _Rejected) -> None:
        self._rejected[rejected.reason] += 1
        n = self._rejected[rejected.reason]
        if n <= 10 or n & (n - 1) == 0:  # a hostile peer must not flood the log
            logger.warning("rejected a message at party %s (%s #%d): %s", self._cfg.party, rejected.reason, n, rejected)

    async def _reject(self, context: grpc.aio.ServicerContext, rejected: _Rejected) -> NoReturn:
        self._count_rejection(rejected)
        await context.abort(rejected.code, str(rejected), trailing_metadata=((REASON_KEY, rejected.reason),))
