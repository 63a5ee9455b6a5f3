"""Buffers large payloads are assembled in: huge pages, reused only once nothing uses them (REP 0090, REP 0170)."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from proxy._allowlist import build_allowed
from proxy._buffers import PayloadBuffers
from proxy._config import TransportConfig
from proxy._receiver import ReceiverProxy
from proxy._sender import SenderProxy
from tests.support import free_ports

MIB = 1 << 20


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return ""
    return text[text.index("[") + 1 : text.index("]")]


def _address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def _mapping_stats(address: int) -> dict:
    """The /proc/self/smaps counters (kB) and VmFlags of the mapping holding ``address``."""
    stats: dict = {}
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split()[0]
        if "-" in first and not first.endswith(":"):
            start, end = (int(x, 16) for x in first.split("-"))
            inside = start <= address < end
        elif inside and first == "VmFlags:":
            stats["VmFlags"] = line.split()[1:]
        elif inside and first.endswith(":") and line.split()[-1] == "kB":
            stats[first[:-1]] = int(line.split()[1])
    return stats


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_new_buffer_is_private_writable_zeroed_and_exactly_the_size_asked():
    buffers = PayloadBuffers(keep_bytes=0)
    view = buffers.take(4 * MIB + 5)
    assert len(view) == 4 * MIB + 5 and not view.readonly and view.format == "B"
    assert view[:16].tobytes() == bytes(16) and view[-16:].tobytes() == bytes(16)
    view[:5] = b"hello"
    stats = _mapping_stats(_address(view))
    assert "sh" not in stats["VmFlags"] and stats["Private_Dirty"] > 0  # a private mapping


@pytest.mark.skipif(_thp_mode() not in ("always", "madvise"),
                    reason="transparent huge pages are off on this machine")
def test_a_large_buffer_gets_huge_pages():
    view = PayloadBuffers(keep_bytes=0).take(32 * MIB)
    view[:] = b"\x01" * (32 * MIB)  # first writes: the kernel maps the pages now
    stats = _mapping_stats(_address(view))
    assert stats["AnonHugePages"] >= 8 * 1024, stats  # most of 32 MiB in 2 MiB pages (4 KiB pages: 0)


def test_a_buffer_is_reused_only_after_every_value_built_on_it_is_gone():
    buffers = PayloadBuffers(keep_bytes=64 * MIB)
    view = buffers.take(8 * MIB)
    first = _address(view)
    chunks: list = []
    data = pickle.dumps(np.arange(MIB, dtype=np.uint8), protocol=5, buffer_callback=chunks.append)
    view[: MIB] = chunks[0].raw()
    array = pickle.loads(data, buffers=[view[: MIB]])  # a value using the buffer in place
    del view, chunks
    gc.collect()
    busy = buffers.take(8 * MIB)
    assert _address(busy) != first and buffers.reused == 0  # the array still uses the first buffer
    assert int(array[77]) == 77
    del array
    gc.collect()
    again = buffers.take(8 * MIB - 3)
    assert _address(again) == first and buffers.reused == 1 and buffers.mapped == 2


def test_a_much_smaller_payload_does_not_take_a_big_idle_buffer():
    buffers = PayloadBuffers(keep_bytes=256 * MIB)
    big = buffers.take(64 * MIB)
    big_at = _address(big)
    del big
    small = buffers.take(2 * MIB)
    assert _address(small) != big_at and buffers.reused == 0
    assert buffers.idle_bytes == 64 * MIB


def test_idle_buffers_stay_within_keep_bytes_newest_first():
    buffers = PayloadBuffers(keep_bytes=10 * MIB)
    views = [buffers.take(4 * MIB) for _ in range(3)]
    newest = _address(views[2])
    for i in range(3):
        views[i] = None  # returned oldest first
    buffers.trim()
    assert buffers.idle_bytes == 8 * MIB  # two of 4 MiB fit in 10 MiB, the oldest was unmapped
    assert _address(buffers.take(4 * MIB)) == newest

    nothing_kept = PayloadBuffers(keep_bytes=0)
    view = nothing_kept.take(4 * MIB)
    del view
    nothing_kept.trim()
    assert nothing_kept.idle_bytes == 0


def test_an_idle_buffer_is_unmapped_after_keep_s():
    clock = _Clock()
    buffers = PayloadBuffers(keep_bytes=64 * MIB, keep_s=30.0, clock=clock)
    view = buffers.take(4 * MIB)
    del view
    buffers.trim()
    clock.now = 29.0
    buffers.trim()
    assert buffers.idle_bytes == 4 * MIB
    clock.now = 31.0
    buffers.trim()
    assert buffers.idle_bytes == 0
    buffers.take(4 * MIB)
    assert buffers.mapped == 2 and buffers.reused == 0


def test_close_unmaps_idle_buffers_and_loans_that_end_later():
    buffers = PayloadBuffers(keep_bytes=64 * MIB)
    idle, lent = buffers.take(4 * MIB), buffers.take(4 * MIB)
    del idle
    buffers.close()
    assert buffers.idle_bytes == 0
    del lent
    gc.collect()
    buffers.trim()
    assert buffers.idle_bytes == 0


def test_loans_ending_on_many_threads_all_come_back_once():
    buffers = PayloadBuffers(keep_bytes=1 << 30)
    views = [buffers.take(2 * MIB) for _ in range(40)]
    addresses = {_address(v) for v in views}
    per_thread = [views[i::4] for i in range(4)]
    views.clear()

    def drop(mine):
        while mine:
            mine.pop()

    threads = [threading.Thread(target=drop, args=(mine,)) for mine in per_thread]
    per_thread = None
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    buffers.trim()
    assert buffers.idle_bytes == 40 * 2 * MIB
    again = [buffers.take(2 * MIB) for _ in range(40)]
    assert {_address(v) for v in again} == addresses and buffers.reused == 40


def test_the_receiver_assembles_each_large_payload_right_in_a_reused_buffer():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}

    def cfg(party):
        return TransportConfig(job="job", party=party, listen_address=addrs[party],
                               peers={p: a for p, a in addrs.items() if p != party},
                               allowed_globals=build_allowed(), connect_timeout_s=5)

    async def value(v):
        return v

    async def main():
        alice = ReceiverProxy(cfg("alice"))
        await alice.start()
        bob = SenderProxy(cfg("bob"))
        try:
            sums = []
            for i in range(3):
                sent = np.full(3 * MIB, i + 1, dtype=np.uint8)
                sent[-1] = 200 + i
                await bob.send("alice", str(i), "f", [value(sent)])
                got = await alice.recv("bob", str(i), "f")
                sums.append((int(got.sum()), int(got[-1])))
                del got
                gc.collect()
            return sums, (await alice.stats())["payload_buffers"]
        finally:
            await bob.stop()
            await alice.stop()

    sums, buffers = asyncio.run(main())
    assert sums == [((3 * MIB - 1) * (i + 1) + 200 + i, 200 + i) for i in range(3)]  # nothing left of the one before
    assert buffers["mapped"] == 1 and buffers["reused"] == 2 and buffers["idle_bytes"] == 4 * MIB
