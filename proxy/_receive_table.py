"""The receiver's matching state: posted receives versus arrived messages.

Plain state with no I/O, so it can be tested exhaustively. A message is keyed
by ``(src, key)``. Either side may come first: a receive posted before the data
waits on a future; data arriving before its receive is buffered, counted
against the unsolicited-bytes budget until the receive claims it.

The table remembers what it received, to answer a sender's retry DUPLICATE.
A numbered message (``seq`` > 0: 1, 2, ... per sender) is remembered in
O(1) memory once the numbers before it arrived (reps/0130); an unnumbered
one by its key, for the life of the table.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import Callable, Optional

logger = logging.getLogger("silofed.proxy")


class Admission(enum.Enum):
    """What the receiver answers to a message header."""

    WANTED = "wanted"  # its receive is posted: always accepted
    RESERVED = "reserved"  # unsolicited, fits the budget: bytes reserved
    BUSY = "busy"  # unsolicited and the budget is full: sender retries later
    DUPLICATE = "duplicate"  # already received: sender treats it as delivered


@dataclass
class Arrival:
    """One received message, kept until its receive claims it."""

    kind: int
    producer: str
    pickle_size: int
    buffer_sizes: list[int]
    payload: memoryview  # one contiguous byte buffer: the pickle stream, then its buffers


@dataclass
class _Slot:
    expected_producer: Optional[str] = None
    future: Optional[asyncio.Future] = None
    arrival: Optional[Arrival] = None
    on_arrival: Optional[Callable[[], None]] = None


class _SeenNumbers:
    """The sequence numbers received from one sender: all up to ``through``, and those above it."""

    __slots__ = ("through", "above")

    def __init__(self) -> None:
        self.through = 0
        self.above: set[int] = set()

    def __contains__(self, seq: int) -> bool:
        return seq <= self.through or seq in self.above

    def add(self, seq: int) -> None:
        if seq != self.through + 1:
            self.above.add(seq)
            return
        self.through = seq
        while self.through + 1 in self.above:
            self.through += 1
            self.above.remove(self.through)


@dataclass
class TableStats:
    """Counters of the receive table."""

    received: int = 0
    received_bytes: int = 0
    duplicates: int = 0
    buffered_bytes: int = 0
    peak_buffered_bytes: int = 0
    busy_replies: int = 0


class ReceiveTable:
    """Matches arriving messages with posted receives.

    Args:
        budget_bytes: how many bytes of data nobody has asked for yet may be
            buffered or streaming in; see ``admit``.
    """

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.stats = TableStats()
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._seen_keys: set[tuple[str, str]] = set()
        self._seen_numbers: dict[str, _SeenNumbers] = {}
        self._reserved = 0
        self._failure: Optional[BaseException] = None
        self._failed_sources: dict[str, BaseException] = {}
        self._waiters: list[asyncio.Future] = []

    def admit(self, src: str, key: str, nbytes: int, count_busy: bool = True, seq: int = 0) -> Admission:
        """Decide whether a message announced by its header may stream in.

        A message whose receive is posted is always admitted. Otherwise it is
        admitted only if ``nbytes`` fit in the unsolicited budget (an empty
        buffer always admits one message, so a message larger than the budget
        still makes progress); its bytes are then reserved until ``deliver``
        or ``release``. ``count_busy=False`` does not count a BUSY answer in
        the stats (for a receiver that asks again before it replies). ``seq``
        is the message's number from its header (0: not numbered).
        """
        if self._was_received(src, key, seq):
            self.stats.duplicates += 1
            return Admission.DUPLICATE
        slot = self._slots.get((src, key))
        if slot is not None and slot.future is not None:
            return Admission.WANTED
        used = self.stats.buffered_bytes + self._reserved
        if used and used + nbytes > self.budget_bytes:
            if count_busy:
                self.stats.busy_replies += 1
            return Admission.BUSY
        self._reserved += nbytes
        self._buffer(0)
        return Admission.RESERVED

    def release(self, admission: Admission, nbytes: int) -> None:
        """Give back a reservation of a message that did not arrive whole."""
        if admission is Admission.RESERVED:
            self._reserved -= nbytes
            self._wake()

    def deliver(self, src: str, key: str, arrival: Arrival, admission: Admission, seq: int = 0) -> bool:
        """Record an arrived message. Returns False if it is a duplicate."""
        nbytes = len(arrival.payload)
        self.release(admission, nbytes)
        if self._was_received(src, key, seq):
            self.stats.duplicates += 1
            return False
        if seq:
            self._seen_numbers.setdefault(src, _SeenNumbers()).add(seq)
        else:
            self._seen_keys.add((src, key))
        self.stats.received += 1
        self.stats.received_bytes += nbytes
        slot = self._slots.setdefault((src, key), _Slot())
        if slot.future is not None:
            del self._slots[(src, key)]
            if not slot.future.done():
                slot.future.set_result(arrival)
                if slot.on_arrival is not None:
                    _call_quietly(slot.on_arrival)
        else:
            slot.arrival = arrival
            self._buffer(nbytes)
        return True

    def post(self, src: str, key: str, on_arrival: Optional[Callable[[], None]] = None) -> "asyncio.Future[Arrival]":
        """Ask for a message; the future resolves with its Arrival.

        Data that already arrived is always delivered, even after a failure;
        otherwise a recorded failure (``fail_all``/``fail_from``) fails it.
        ``on_arrival``, if given, is called as the message is delivered, right
        after the future's result is set (not when the future is done here
        already, nor when it fails): a caller that has its own use for the
        value starts at once instead of one turn of the loop later.

        Raises:
            RuntimeError: the same receive was posted twice (a bug in the caller).
        """
        future = asyncio.get_running_loop().create_future()
        slot = self._slots.setdefault((src, key), _Slot())
        if slot.future is not None:
            raise RuntimeError(f"receive for {key} from {src} posted twice")
        self._wake()  # a message held as BUSY may be this one
        if slot.arrival is not None:
            self._buffer(-len(slot.arrival.payload))
            future.set_result(slot.arrival)
            del self._slots[(src, key)]
            return future
        failure = self._failure or self._failed_sources.get(src)
        if failure is not None:
            del self._slots[(src, key)]
            future.set_exception(failure)
            return future
        slot.future = future
        slot.on_arrival = on_arrival
        return future

    def remembered(self) -> int:
        """How many received messages the table remembers one by one (numbered
        ones that arrived ahead of an earlier number, and unnumbered ones)."""
        return len(self._seen_keys) + sum(len(n.above) for n in self._seen_numbers.values())

    def fail_all(self, error: BaseException) -> None:
        """Fail every pending and every future receive (of data not yet arrived) with ``error``."""
        if self._failure is None:
            self._failure = error
        self._fail_pending(lambda src: True, error)

    def fail_from(self, src: str, error: BaseException) -> None:
        """Fail pending and future receives from ``src`` (of data not yet arrived)."""
        self._failed_sources.setdefault(src, error)
        self._fail_pending(lambda s: s == src, error)

    def _fail_pending(self, match: Callable[[str], bool], error: BaseException) -> None:
        for (src, key), slot in list(self._slots.items()):
            if match(src) and slot.future is not None:
                if not slot.future.done():
                    slot.future.set_exception(error)
                del self._slots[(src, key)]

    def wait_for_change(self) -> "asyncio.Future[None]":
        """A future resolved at the next change that may turn a BUSY answer
        into an admission: a reservation given back, buffered data claimed,
        or a receive posted. Never fails; cancel it to stop waiting (cancelled
        ones are dropped at the next call)."""
        future = asyncio.get_running_loop().create_future()
        # a holder that timed out cancelled its future: drop those here
        self._waiters = [w for w in self._waiters if not w.done()]
        self._waiters.append(future)
        return future

    def _was_received(self, src: str, key: str, seq: int) -> bool:
        if seq:
            numbers = self._seen_numbers.get(src)
            return numbers is not None and seq in numbers
        return (src, key) in self._seen_keys

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def _buffer(self, delta: int) -> None:
        self.stats.buffered_bytes += delta
        in_memory = self.stats.buffered_bytes + self._reserved
        self.stats.peak_buffered_bytes = max(self.stats.peak_buffered_bytes, in_memory)


def _call_quietly(callback: Callable[[], None]) -> None:
    """Run a receive's arrival callback; its failure must not fail the delivery."""
    try:
        callback()
    except Exception:
        logger.exception("a receive's arrival callback failed")
