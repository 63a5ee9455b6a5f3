"""The long-lived PushStream call from this party to one peer.

Small messages (``wire.Small``) are written to it one after another and the
receiver answers each with an ``Ack`` carrying the message's id, in the order
it finishes them; ``push`` matches the answer to its message. There is no
call to set up per message: about half the wall time and 40% less CPU per
small object than a unary call (reps/0070-small-message-stream.md).

Failures look to the caller like those of a unary call, so the sender's retry
logic is the same for both: a refused message raises ``grpc.aio.AioRpcError``
with the status code and reason the receiver gave; a stream that broke or
ended raises one with code UNAVAILABLE, and the next ``push`` opens a new
stream. A message whose stream broke may or may not have arrived: the sender
sends it again and the receiver answers DUPLICATE if it had.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Callable, Optional

import grpc

from proxy import _wire_pb2 as wire
from proxy._service import PUSH_STREAM, REASON_KEY

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class PeerStream:
    """One peer's PushStream, opened on first use and again after it breaks.

    Args:
        channel: the channel to the peer.
    """

    def __init__(self, channel: grpc.aio.Channel):
        self._method = channel.stream_stream(PUSH_STREAM, request_serializer=wire.Small.SerializeToString,
                                             response_deserializer=wire.Ack.FromString)
        self._call: Optional[grpc.aio.StreamStreamCall] = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._writing = asyncio.Lock()
        self._reader: Optional[asyncio.Task] = None

    async def push(self, small: wire.Small, on_write: Optional[Callable[[], None]] = None) -> wire.Ack:
        """Send ``small`` (its ``id`` is set here) and wait for the receiver's answer.

        ``on_write``, if given, is called on the loop as the message is handed to gRPC.

        Returns:
            the Ack: OK, DUPLICATE or BUSY.

        Raises:
            grpc.aio.AioRpcError: the receiver refused the message (its code
                and reason), or the stream broke (UNAVAILABLE).
        """
        if self._call is None:
            self._open()
        call, pending = self._call, self._pending
        small.id = next(self._ids)
        answered = asyncio.get_running_loop().create_future()
        pending[small.id] = answered
        try:
            # grpc.aio cancels the whole call when a write is cancelled: the write
            # runs in its own task, so cancelling this send leaves the others alone
            await asyncio.shield(asyncio.ensure_future(self._write(call, small, on_write)))
            ack = await answered
        finally:
            pending.pop(small.id, None)
        if ack.status == wire.REFUSED:
            raise grpc.aio.AioRpcError(_CODES.get(ack.code, grpc.StatusCode.UNKNOWN), grpc.aio.Metadata(),
                                       grpc.aio.Metadata((REASON_KEY, ack.reason)), ack.detail)
        return ack

    async def _write(self, call: grpc.aio.StreamStreamCall, small: wire.Small,
                     on_write: Optional[Callable[[], None]]) -> None:
        async with self._writing:
            try:
                if on_write is not None:
                    on_write()
                await call.write(small)
            except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                pass  # the stream ended: the reader fails the message with why

    def close(self) -> None:
        """End the stream; messages still waiting for an answer fail with UNAVAILABLE."""
        if self._call is not None:
            self._call.cancel()

    def _open(self) -> None:
        self._call = self._method()
        self._pending = {}
        self._reader = asyncio.ensure_future(self._read(self._call, self._pending))

    async def _read(self, call: grpc.aio.StreamStreamCall, pending: dict[int, asyncio.Future]) -> None:
        error: Optional[grpc.aio.AioRpcError] = None
        why = "the stream was closed"
        try:
            async for ack in call:
                for msg_id in (ack.id, *ack.more_ids):
                    answered = pending.get(msg_id)
                    if answered is not None and not answered.done():
                        answered.set_result(ack)
            why = "the receiver ended the stream"
        except grpc.aio.AioRpcError as err:
            if err.code() is grpc.StatusCode.CANCELLED:  # closed here, or by a receiver that is stopping
                why = f"the stream was cancelled: {err.details()}"
            else:
                error = err
        finally:
            if self._call is call:
                self._call = None
            call.cancel()  # ended already, unless this reader itself failed
            if error is None:
                error = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), why)
            for answered in pending.values():
                if not answered.done():
                    answered.set_exception(error)
