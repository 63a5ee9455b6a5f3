"""Hostile traffic for a receiver: a raw gRPC client that speaks the wire format badly.

Used by the unit and the multi-party security tests. Every case is a list of
raw frames (bytes) for a Push stream, or one raw Small message for a PushStream,
and the gRPC status and ``stats()["rejected"]`` reason the receiver must answer with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import grpc

from proxy import _wire_pb2 as wire
from proxy._service import PING, PROTOCOL_VERSION, PUSH, PUSH_STREAM


@dataclass(frozen=True)
class Case:
    """One malformed message and the answer it must get."""

    name: str
    frames: tuple[bytes, ...]
    code: Optional[grpc.StatusCode]  # None: any non-OK status
    reason: Optional[str]  # None: any rejection reason
    small: bool = False  # frames is one raw Small message for a PushStream


def _frame(**kw) -> bytes:
    return wire.Frame(**kw).SerializeToString()


def _head(job: str, src: str, dst: str, key: str, size: int, version: int = PROTOCOL_VERSION) -> wire.Header:
    return wire.Header(version=version, job=job, src=src, dst=dst, key=key, producer="hostile", pickle_size=size)


def _header(job: str, src: str, dst: str, key: str, size: int, version: int = PROTOCOL_VERSION) -> bytes:
    return _frame(header=_head(job, src, dst, key, size, version))


def _small(header: Optional[wire.Header], payload: bytes) -> tuple[bytes]:
    msg = wire.Small(payload=payload) if header is None else wire.Small(header=header, payload=payload)
    return (msg.SerializeToString(),)


def _cycle(builders: list, n: int, seed: int, prefix: str) -> list[Case]:
    """``n`` cases, built by ``builders`` in turn from a unique key and a seeded random source."""
    rng = random.Random(seed)
    return [builders[i % len(builders)](f"{prefix}-{seed}-{i}", rng) for i in range(n)]


def small_cases(job: str, src: str, dst: str, max_bytes: int, n: int, seed: int = 0) -> list[Case]:
    """``n`` malformed Small messages, like :func:`cases`."""
    S = grpc.StatusCode
    builders = [
        lambda key, rng: Case("wrong_job", _small(_head("not-" + job, src, dst, key, 1), b"x"),
                              S.FAILED_PRECONDITION, "wrong_job", True),
        lambda key, rng: Case("unknown_party", _small(_head(job, "mallory", dst, key, 1), b"x"),
                              S.PERMISSION_DENIED, "unknown_party", True),
        lambda key, rng: Case("version", _small(_head(job, src, dst, key, 1, PROTOCOL_VERSION + 7), b"x"),
                              S.FAILED_PRECONDITION, "version", True),
        lambda key, rng: Case("too_large", _small(_head(job, src, dst, key, max_bytes + 1), b""),
                              S.RESOURCE_EXHAUSTED, "too_large", True),
        lambda key, rng: Case("size_mismatch", _small(_head(job, src, dst, key, 8), b"x" * 9),
                              S.INVALID_ARGUMENT, "size_mismatch", True),
        lambda key, rng: Case("truncated", _small(_head(job, src, dst, key, 100), b"x" * 10),
                              S.DATA_LOSS, "truncated", True),
        lambda key, rng: Case("no_header", _small(None, b"data"), S.INVALID_ARGUMENT, "malformed", True),
        # wire type 7 does not exist: never decodes
        lambda key, rng: Case("undecodable", (b"\x0f" + rng.randbytes(rng.randint(0, 64)),),
                              S.INVALID_ARGUMENT, "malformed", True),
        lambda key, rng: Case("random", (rng.randbytes(rng.randint(1, 200)),), None, None, True),
    ]
    return _cycle(builders, n, seed, "hostile-small")


def cases(job: str, src: str, dst: str, max_bytes: int, n: int, seed: int = 0) -> list[Case]:
    """``n`` malformed messages for the receiver of ``dst`` in ``job``, cycling through every kind.

    ``src`` must be a party of the job (so that the size checks are reached).
    """
    S = grpc.StatusCode
    builders = [
        lambda key, rng: Case("wrong_job", (_header("not-" + job, src, dst, key, 1), _frame(chunk=b"x")),
                              S.FAILED_PRECONDITION, "wrong_job"),
        lambda key, rng: Case("unknown_party", (_header(job, "mallory", dst, key, 1), _frame(chunk=b"x")),
                              S.PERMISSION_DENIED, "unknown_party"),
        lambda key, rng: Case("wrong_destination", (_header(job, src, "nobody", key, 1),), S.INVALID_ARGUMENT,
                              "wrong_destination"),
        lambda key, rng: Case("version", (_header(job, src, dst, key, 1, version=PROTOCOL_VERSION + 7),),
                              S.FAILED_PRECONDITION, "version"),
        lambda key, rng: Case("too_large", (_header(job, src, dst, key, max_bytes + 1),), S.RESOURCE_EXHAUSTED,
                              "too_large"),
        lambda key, rng: Case("size_mismatch", (_header(job, src, dst, key, 8), _frame(chunk=b"x" * 8),
                                                _frame(chunk=b"y")), S.INVALID_ARGUMENT, "size_mismatch"),
        lambda key, rng: Case("truncated", (_header(job, src, dst, key, 100), _frame(chunk=b"x" * 10)),
                              S.DATA_LOSS, "truncated"),
        # wire type 7 does not exist: never decodes
        lambda key, rng: Case("undecodable", (b"\x0f" + rng.randbytes(rng.randint(0, 64)),), S.INVALID_ARGUMENT,
                              "malformed"),
        lambda key, rng: Case("chunk_first", (_frame(chunk=b"data"),), S.INVALID_ARGUMENT, "malformed"),
        lambda key, rng: Case("empty_stream", (), S.INVALID_ARGUMENT, "malformed"),
        lambda key, rng: Case("second_header", (_header(job, src, dst, key, 4), _header(job, src, dst, key, 4)),
                              S.INVALID_ARGUMENT, "malformed"),
        # random bytes: may or may not decode, must be refused either way
        lambda key, rng: Case("random", tuple(rng.randbytes(rng.randint(1, 200)) for _ in range(rng.randint(1, 3))),
                              None, None),
    ]
    return _cycle(builders, n, seed, "hostile")


def all_cases(job: str, src: str, dst: str, max_bytes: int, n: int, seed: int = 0) -> list[Case]:
    """``n`` cases, two thirds Push streams and one third Small messages, interleaved."""
    streams = cases(job, src, dst, max_bytes, n - n // 3, seed)
    smalls = small_cases(job, src, dst, max_bytes, n // 3, seed)
    out = []
    for i, case in enumerate(streams):
        out.append(case)
        if i % 2 == 1 and smalls:
            out.append(smalls.pop())
    return out + smalls


class RawClient:
    """A gRPC client that sends frames as given, bypassing the sender proxy."""

    def __init__(self, channel: grpc.aio.Channel):
        self._push = channel.stream_unary(PUSH, request_serializer=bytes, response_deserializer=wire.Ack.FromString)
        self._push_stream = channel.stream_stream(PUSH_STREAM, request_serializer=bytes,
                                                  response_deserializer=wire.Ack.FromString)
        self._ping = channel.unary_unary(PING, request_serializer=wire.PingRequest.SerializeToString,
                                         response_deserializer=wire.PingReply.FromString)

    async def push(self, frames: tuple[bytes, ...], timeout: float = 10,
                   small: bool = False) -> tuple[grpc.StatusCode, str]:
        """Send one stream (or, with ``small``, the one Small message in ``frames`` on a new PushStream).

        Returns the status code and details (OK and the ack status name if
        accepted; for a small message refused, the code and detail of its answer).
        """
        async def gen():
            for f in frames:
                yield f
        try:
            if small:
                call = self._push_stream(gen(), timeout=timeout)
                ack = await call.read()
                call.cancel()
                if ack is grpc.aio.EOF:
                    return grpc.StatusCode.OK, "EOF"
                return _answer(ack)
            ack = await self._push(gen(), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
        return grpc.StatusCode.OK, wire.Status.Name(ack.status)

    async def ping(self, job: str, src: str, timeout: float = 10) -> tuple[grpc.StatusCode, str]:
        """Ping; returns the status code and details."""
        try:
            reply = await self._ping(wire.PingRequest(job=job, src=src), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
        return grpc.StatusCode.OK, reply.party


class SyncRawClient:
    """:class:`RawClient` for a plain (blocking) gRPC channel, usable from any thread."""

    def __init__(self, channel: grpc.Channel):
        self._push = channel.stream_unary(PUSH, request_serializer=bytes, response_deserializer=wire.Ack.FromString)
        self._push_stream = channel.stream_stream(PUSH_STREAM, request_serializer=bytes,
                                                  response_deserializer=wire.Ack.FromString)

    def push(self, frames: tuple[bytes, ...], timeout: float = 10, small: bool = False) -> tuple[grpc.StatusCode, str]:
        """Send one stream (or one Small message on a new PushStream); returns the status code and details."""
        try:
            if small:
                answers = self._push_stream(iter(frames), timeout=timeout)
                ack = next(answers, None)
                answers.cancel()
                return (grpc.StatusCode.OK, "EOF") if ack is None else _answer(ack)
            ack = self._push(iter(frames), timeout=timeout)
        except grpc.RpcError as err:
            return err.code(), err.details() or ""
        return grpc.StatusCode.OK, wire.Status.Name(ack.status)


def _answer(ack: wire.Ack) -> tuple[grpc.StatusCode, str]:
    """A PushStream answer as (code, details): a refusal as the status a Push would end with."""
    if ack.status == wire.REFUSED:
        return next(c for c in grpc.StatusCode if c.value[0] == ack.code), ack.detail
    return grpc.StatusCode.OK, wire.Status.Name(ack.status)
