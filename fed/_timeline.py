"""A party's timeline as a Chrome trace (Trace Event Format).

The driver records its fed calls and ``fed.get`` waits; the sender and
receiver proxies record their transfers (see their ``timeline`` methods).
``build_trace`` turns those records into complete ("X") events, one process
per party and one row per kind of activity; overlapping transfers get
separate rows so the file shows correctly in chrome://tracing and Perfetto.
Times are wall-clock microseconds, so the files of all parties line up when
opened together (as far as the hosts' clocks agree).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

TIMELINE_DIR_ENV = "FED_TIMELINE_DIR"


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


class _Rows:
    """Numbers rows (Chrome "threads") and spreads overlapping events over rows of one group."""

    def __init__(self) -> None:
        self.tids: dict[str, int] = {}
        self._free_at: dict[str, list[int]] = {}

    def tid(self, name: str) -> int:
        if name not in self.tids:
            self.tids[name] = len(self.tids) + 1
        return self.tids[name]

    def place(self, group: str, ts: int, dur: int) -> int:
        """The first row of ``group`` free at ``ts``; events must come sorted by ``ts``."""
        ends = self._free_at.setdefault(group, [])
        for i, end in enumerate(ends):
            if end <= ts:
                ends[i] = ts + dur
                return self.tid(f"{group} #{i}" if i else group)
        ends.append(ts + dur)
        i = len(ends) - 1
        return self.tid(f"{group} #{i}" if i else group)


def build_trace(
    party: str,
    parties: Sequence[str],
    job: str,
    calls: Iterable[tuple],
    gets: Iterable[tuple],
    sends: Iterable[tuple],
    receives: Iterable[tuple],
    dropped: int = 0,
) -> dict:
    """The Chrome trace of one party.

    Args:
        party: this party.
        parties: every party of the job (fixes the pid of each party).
        job: the job name.
        calls: driver records ``(start_s, submit_s, seq, party, producer, keys)``.
        gets: driver records ``(start_s, wait_s, n_objects, first_key, outcome)``.
        sends: the sender proxy's events (see ``SenderProxy.timeline``).
        receives: the receiver proxy's events (see ``ReceiverProxy.timeline``).
        dropped: how many old events were dropped because the logs were full.

    Returns:
        ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``.
    """
    pid = list(parties).index(party) + 1 if party in parties else 1
    rows = _Rows()
    events: list[dict] = []

    def add(name: str, cat: str, start_s: float, dur_s: float, tid: int, args: Mapping[str, Any]) -> None:
        events.append({"name": name, "cat": cat, "ph": "X", "ts": _us(start_s), "dur": max(1, _us(dur_s)),
                       "pid": pid, "tid": tid, "args": dict(args)})

    calls_tid, gets_tid = rows.tid("fed calls (driver)"), rows.tid("fed.get (driver)")
    for start, took, seq, where, producer, keys in calls:
        add(f"call {producer}", "call", start, took, calls_tid,
            {"seq": seq, "party": where, "producer": producer, "keys": list(keys),
             "runs_here": where == party})
    for start, took, n, first_key, outcome in gets:
        add("fed.get", "get", start, took, gets_tid, {"objects": n, "first_key": first_key, "outcome": outcome})

    transfers = []
    for _name, start, took, peer, key, producer, kind, nbytes, retries, outcome in sends:
        transfers.append((start, took, "send", f"send to {peer}",
                          {"peer": peer, "key": key, "producer": producer, "kind": kind, "bytes": nbytes,
                           "retries": retries, "outcome": outcome}))
    for name, start, took, peer, key, producer, nbytes, what in receives:
        if name == "arrive":
            transfers.append((start, took, "arrive", f"arrivals from {peer}",
                              {"peer": peer, "key": key, "producer": producer, "bytes": nbytes, "kind": what}))
        else:
            transfers.append((start, took, "recv", f"receives from {peer}",
                              {"peer": peer, "key": key, "producer": producer, "bytes": nbytes, "outcome": what}))
    transfers.sort(key=lambda t: t[0])
    for start, took, cat, group, args in transfers:
        tid = rows.place(group, _us(start), max(1, _us(took)))
        add(f"{cat} {args['producer'] or args['key']}", cat, start, took, tid, args)

    meta = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": f"party {party}"}},
            {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}}]
    for name, tid in rows.tids.items():
        meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
        meta.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
    return {"traceEvents": meta + events, "displayTimeUnit": "ms",
            "otherData": {"party": party, "job": job, "dropped_events": dropped}}


def write_trace(trace: dict, path: Union[str, os.PathLike]) -> Path:
    """Write ``trace`` as JSON to ``path`` (creating its directory); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(trace))
    tmp.replace(out)
    return out
