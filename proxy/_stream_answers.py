"""The receiver's answers on one PushStream: OK answers batched, the others at once.

Writing an answer costs the receiving process a gRPC write, done on its event
loop while holding the interpreter lock, just when the program it serves
wakes up to use the message it answers. Answers that only say "delivered"
(OK) are therefore gathered for a short while and written as one ``Ack``
naming all of them (``id`` and ``more_ids``); every other answer (BUSY,
DUPLICATE, REFUSED, and any answer to a control message) is written at once,
after the OK answers gathered before it. See reps/0080-batched-answers.md.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Optional

from proxy import _wire_pb2 as wire

# How long an OK answer may wait for others, and how many may wait at most.
# The sender keeps each unanswered small message (proxy._sender bounds them
# per peer), so the batch stays well below that bound.
BATCH_DELAY_S = 0.02
BATCH_MAX = 64


class StreamAnswers:
    """Answers written on one stream, in order, OK ones batched.

    Args:
        write: writes one Ack on the stream (the call's ``context.write``).
        delay_s: how long an OK answer waits for others (0: written at once); default BATCH_DELAY_S.
        batch_max: written as soon as this many OK answers wait.
    """

    def __init__(self, write: Callable[[wire.Ack], Awaitable[None]], delay_s: Optional[float] = None,
                 batch_max: int = BATCH_MAX):
        self._write = write
        self._delay_s = BATCH_DELAY_S if delay_s is None else delay_s
        self._batch_max = batch_max
        self._writing = asyncio.Lock()
        self._ok: list[int] = []
        self._timer: Optional[asyncio.TimerHandle] = None
        self._flushing: set[asyncio.Task] = set()

    async def answer(self, ack: wire.Ack, at_once: bool = False) -> None:
        """Answer the message ``ack.id``: an OK answer is gathered unless ``at_once``.

        Raises:
            what the stream's write raises when the stream ended (the sender
            then sends its unanswered messages again).
        """
        if ack.status == wire.OK and not at_once and self._delay_s > 0:
            self._ok.append(ack.id)
            if len(self._ok) >= self._batch_max:
                await self.flush()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._delay_s, self._flush_soon)
            return
        async with self._writing:
            await self._write_gathered()
            await self._write(ack)

    async def flush(self) -> None:
        """Write the OK answers gathered so far (one Ack)."""
        async with self._writing:
            await self._write_gathered()

    def close(self) -> None:
        """Stop the timer; answers still gathered are dropped (the stream has ended)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._flushing:
            task.cancel()

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self._flush_quietly())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except Exception:
            pass  # the stream ended meanwhile: the sender sends those messages again

    async def _write_gathered(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ids, self._ok = self._ok, []
        if ids:
            await self._write(wire.Ack(status=wire.OK, id=ids[0], more_ids=ids[1:]))
