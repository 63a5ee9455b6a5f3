"""Memory the receiver keeps per message it received, for duplicate detection (REP 0130).

Feeds a receive table N small messages from one sender, each claimed by its
receive as it arrives (as in a training loop), and prints the bytes still
allocated per message afterwards (tracemalloc): messages numbered by the
sender (what silofed's sender proxy sends) and unnumbered ones (remembered by
key, as control messages are). Repeated ``--runs`` times; median, min, max.

Usage: python benchmarks/tools/receive_table_memory.py [--messages N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from proxy._receive_table import Admission, Arrival, ReceiveTable  # noqa: E402


async def _bytes_per_message(messages: int, numbered: bool) -> float:
    table = ReceiveTable(budget_bytes=1 << 30)
    payload = memoryview(b"\x80\x05N.")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(1, messages + 1):
        key, seq = str(i), i if numbered else 0
        claimed = table.post("bob", key)
        admission = table.admit("bob", key, len(payload), seq=seq)
        assert admission is Admission.WANTED
        table.deliver("bob", key, Arrival(0, "f", len(payload), [], payload), admission, seq=seq)
        claimed.result()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / messages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    for numbered, label in ((True, "numbered (silofed's sender)"), (False, "unnumbered (by key)")):
        figures = [asyncio.run(_bytes_per_message(opts.messages, numbered)) for _ in range(opts.runs)]
        print(f"{label:<30} median {statistics.median(figures):8.2f}  min {min(figures):8.2f}  "
              f"max {max(figures):8.2f}  bytes kept per message  (n={opts.runs}, {opts.messages} messages)")


if __name__ == "__main__":
    main()
