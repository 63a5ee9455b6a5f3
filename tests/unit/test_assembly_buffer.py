"""The buffer a large payload is assembled in (proxy._receiver._assembly_buffer)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from proxy._receiver import _assembly_buffer

MIB = 1 << 20


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return ""
    return text[text.index("[") + 1 : text.index("]")]


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


def test_the_buffer_is_private_writable_and_starts_zeroed():
    buffer = _assembly_buffer(4 * MIB)
    view = memoryview(buffer)
    assert len(view) == 4 * MIB and not view.readonly
    assert view[:16].tobytes() == bytes(16) and view[-16:].tobytes() == bytes(16)
    view[:5] = b"hello"
    stats = _mapping_stats(ctypes.addressof(ctypes.c_char.from_buffer(buffer)))
    assert "sh" not in stats["VmFlags"] and stats["Private_Dirty"] > 0  # a private mapping
    del view
    buffer.close()


@pytest.mark.skipif(_thp_mode() not in ("always", "madvise"),
                    reason="transparent huge pages are off on this machine")
def test_a_large_buffer_gets_huge_pages():
    buffer = _assembly_buffer(32 * MIB)
    memoryview(buffer)[:] = b"\x01" * (32 * MIB)  # first writes: the kernel maps the pages now
    stats = _mapping_stats(ctypes.addressof(ctypes.c_char.from_buffer(buffer)))
    assert stats["AnonHugePages"] >= 8 * 1024, stats  # most of 32 MiB in 2 MiB pages (4 KiB pages: 0)
    buffer.close()
