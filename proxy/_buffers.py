"""Buffers for large payloads, mapped once and reused after every value built on them is gone.

A large payload is assembled in a private anonymous mapping in huge pages
(REP 0090), and the value unpickled from it uses it in place. Unmapping it
afterwards hands its pages back to the kernel, and on a virtual machine that
reports free pages to its host, the next first write to memory the host took
back runs at ~1 GB/s instead of 12-19: most of a 256 MiB transfer's time.
So a buffer whose last user is gone waits, mapped, for the next payload of a
similar size, for at most ``KEEP_S`` seconds and ``keep_bytes`` in all
(reps/0170-reused-payload-buffers.md).

"Last user gone" is exact, not guessed: each loan is a ctypes array over the
mapping, holding a buffer export of it, and every view handed out (slices,
arrays unpickled from them) keeps that array alive; its finalizer returns the
mapping once nothing refers to it.
"""

from __future__ import annotations

import collections
import ctypes
import mmap
import threading
import time
import weakref
from typing import Callable, Optional

# Buffers are mapped in whole huge pages, so one serves payloads up to that size.
_HUGE_PAGE = 2 << 20
# A payload reuses an idle buffer at most this much larger than it needs.
_SLACK = 1.25
# How long an idle buffer stays mapped without being reused.
KEEP_S = 30.0


def _new_mapping(size: int) -> mmap.mmap:
    """A private anonymous mapping, in huge pages where the kernel allows."""
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buffer.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # no transparent huge pages here: 4 KiB pages then
            pass
    return buffer


class PayloadBuffers:
    """Writable buffers for large payloads; idle ones are reused, the rest unmapped.

    Thread-safe: a loan may end on any thread (where its last view is dropped).

    Args:
        keep_bytes: how many bytes of idle buffers stay mapped at most (0: none).
        keep_s: how long an idle buffer stays mapped without being reused.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, keep_bytes: int, keep_s: float = KEEP_S, clock: Callable[[], float] = time.monotonic):
        self._keep_bytes = keep_bytes
        self._keep_s = keep_s
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[tuple[float, mmap.mmap]] = []  # (returned at, mapping), oldest first
        self._returned: collections.deque = collections.deque()  # mappings back from loans, not yet sorted in
        self._closed = False
        self.mapped = 0  # buffers mapped so far
        self.reused = 0  # loans served by an idle buffer

    def take(self, size: int) -> memoryview:
        """A writable view of ``size`` bytes; its contents are undefined (zeroes, or an earlier payload)."""
        with self._lock:
            self._sort_in_returned()
            mapping = self._pop_fitting(size)
            self._trim()
            if mapping is None:
                self.mapped += 1
            else:
                self.reused += 1
        if mapping is None:
            mapping = _new_mapping(-(-size // _HUGE_PAGE) * _HUGE_PAGE)
        loan = (ctypes.c_char * len(mapping)).from_buffer(mapping)
        finalizer = weakref.finalize(loan, self._give_back, mapping)
        finalizer.atexit = False
        return memoryview(loan).cast("B")[:size]

    def trim(self) -> None:
        """Unmap the buffers idle for longer than ``keep_s``."""
        with self._lock:
            self._sort_in_returned()
            self._trim()

    def close(self) -> None:
        """Unmap every idle buffer; buffers still lent are unmapped when their loans end."""
        with self._lock:
            self._closed = True
            self._sort_in_returned()
            self._trim()

    @property
    def idle_bytes(self) -> int:
        """Bytes of idle buffers still mapped."""
        with self._lock:
            self._sort_in_returned()
            return sum(len(m) for _, m in self._idle)

    def _give_back(self, mapping: mmap.mmap) -> None:
        # Runs where a loan's last view was dropped, perhaps inside a
        # garbage collection on a thread holding the lock: only a deque append.
        if self._closed:
            _unmap(mapping)
        else:
            self._returned.append(mapping)

    def _sort_in_returned(self) -> None:
        now = self._clock()
        while self._returned:
            self._idle.append((now, self._returned.popleft()))

    def _pop_fitting(self, size: int) -> Optional[mmap.mmap]:
        best = None  # the smallest that fits; of equal ones the newest, so the oldest expire
        for i, (_, m) in enumerate(self._idle):
            if size <= len(m) <= size * _SLACK + _HUGE_PAGE and (best is None or len(m) <= len(self._idle[best][1])):
                best = i
        return None if best is None else self._idle.pop(best)[1]

    def _trim(self) -> None:
        limit = 0 if self._closed else self._keep_bytes
        now = self._clock()
        kept, total = [], 0
        for returned, m in reversed(self._idle):  # newest first: those are kept
            if total + len(m) <= limit and now - returned <= self._keep_s:
                kept.append((returned, m))
                total += len(m)
            else:
                _unmap(m)
        kept.reverse()
        self._idle = kept


def _unmap(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:  # its loan's last export is being released right now: unmapped when it is
        pass
