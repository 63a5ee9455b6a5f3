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
import collections
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
        self._outbox: collections.deque = collections.deque()  # (message, on_write) not yet written
        self._wake_writer: Optional[asyncio.Future] = None  # set while the writer waits for messages
        self._reader: Optional[asyncio.Task] = None
        self._writer: Optional[asyncio.Task] = None

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
        pending = self._pending
        small.id = next(self._ids)
        answered = asyncio.get_running_loop().create_future()
        pending[small.id] = answered
        # grpc.aio cancels the whole call when a write is cancelled: the call's
        # writer task writes, so cancelling this send leaves the stream alone
        self._outbox.append((small, on_write))
        wake = self._wake_writer
        if wake is not None and not wake.done():
            wake.set_result(None)
        try:
            ack = await answered
        finally:
            pending.pop(small.id, None)
        if ack.status == wire.REFUSED:
            raise grpc.aio.AioRpcError(_CODES.get(ack.code, grpc.StatusCode.UNKNOWN), grpc.aio.Metadata(),
                                       grpc.aio.Metadata((REASON_KEY, ack.reason)), ack.detail)
        return ack

    async def _write_all(self, call: grpc.aio.StreamStreamCall, outbox: collections.deque) -> None:
        """Write the messages pushed to ``call``, in order, until the call ends."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                while outbox:
                    small, on_write = outbox.popleft()
                    if on_write is not None:
                        on_write()
                    await call.write(small)
                self._wake_writer = loop.create_future()
                await self._wake_writer
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            call.cancel()  # the stream ended (if not, end it): the reader fails the messages left with why
        finally:
            outbox.clear()

    def close(self) -> None:
        """End the stream; messages still waiting for an answer fail with UNAVAILABLE."""
        if self._call is not None:
            self._call.cancel()

    def _open(self) -> None:
        self._call = self._method()
        self._pending = {}
        self._outbox = collections.deque()
        self._wake_writer = None
        self._reader = asyncio.ensure_future(self._read(self._call, self._pending))
        self._writer = asyncio.ensure_future(self._write_all(self._call, self._outbox))

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
                if self._writer is not None:
                    self._writer.cancel()
            call.cancel()  # ended already, unless this reader itself failed
            if error is None:
                error = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), why)
            for answered in pending.values():
                if not answered.done():
                    answered.set_exception(error)
