"""Stats, latency windows, trace building and the metrics export, without Ray."""

from __future__ import annotations

import asyncio
import gc
import json
import random

import pytest

from fed._timeline import build_trace, write_trace
from proxy._config import TransportConfig
from proxy._metrics import RayMetricsExporter
from proxy._receiver import ReceiverProxy
from proxy._sender import SenderProxy
from proxy._stats import EventLog, LatencyWindow, nearest_rank
from tests.support import free_ports


def test_nearest_rank_percentiles():
    ordered = [float(i) for i in range(1, 101)]
    assert nearest_rank(ordered, 50) == 50
    assert nearest_rank(ordered, 90) == 90
    assert nearest_rank(ordered, 99) == 99
    assert nearest_rank(ordered, 100) == 100
    assert nearest_rank([7.0], 1) == nearest_rank([7.0], 99) == 7.0
    assert nearest_rank([1.0, 2.0], 50) == 1.0 and nearest_rank([1.0, 2.0], 51) == 2.0


def test_latency_window_is_bounded_and_keeps_the_recent_samples():
    w = LatencyWindow(size=100)
    assert w.percentiles() == {} and w.summary()["count"] == 0 and "p50_ms" not in w.summary()
    for i in range(1000):
        w.add(i / 1000)
    assert len(w.samples()) == 100 and w.samples() == [i / 1000 for i in range(900, 1000)]
    assert w.count == 1000 and w.max == 0.999
    p = w.percentiles()
    assert p == {50: 0.949, 90: 0.989, 99: 0.998}
    s = w.summary()
    assert s["window"] == 100 and s["p50_ms"] == 949.0 and s["max_ms"] == 999.0
    assert s["mean_ms"] == pytest.approx(499.5)
    # samples added since a count, for the histogram export; older ones out of the window are gone
    assert w.since(1000) == [] and w.since(998) == [0.998, 0.999]
    assert len(w.since(0)) == 100
    with pytest.raises(ValueError, match="at least one"):
        LatencyWindow(0)


def test_latency_percentiles_are_ordered_on_random_data():
    rng = random.Random(3)
    for size in (1, 7, 1024):
        w = LatencyWindow(size)
        for _ in range(rng.randrange(1, 3000)):
            w.add(rng.expovariate(100))
        p = w.percentiles()
        assert min(w.samples()) <= p[50] <= p[90] <= p[99] <= max(w.samples()) <= w.max


def test_event_log_drops_the_oldest():
    log = EventLog(maxlen=3)
    for i in range(5):
        log.append((i,))
    assert log.snapshot() == [(2,), (3,), (4,)] and log.dropped == 2


def _send(start, dur, peer, key, producer="f", nbytes=10):
    return ("send", start, dur, peer, key, producer, "data", nbytes, 0, "ok")


def test_trace_is_chrome_trace_format_with_overlaps_on_separate_rows(tmp_path):
    trace = build_trace(
        "bob", ["alice", "bob"], "job",
        calls=[(100.0, 0.001, 0, "bob", "f", ["0"])],
        gets=[(100.5, 0.2, 1, "0", "ok")],
        sends=[_send(100.0, 1.0, "alice", "0"), _send(100.5, 1.0, "alice", "1"), _send(101.5, 0.1, "alice", "2")],
        receives=[("arrive", 100.2, 0.01, "alice", "3", "g", 5, "data"),
                  ("recv", 100.1, 0.2, "alice", "3", "g", 5, "ok")],
    )
    path = write_trace(trace, tmp_path / "sub" / "bob.json")
    loaded = json.loads(path.read_text())
    events = [e for e in loaded["traceEvents"] if e["ph"] == "X"]
    for e in events:
        assert set(e) >= {"name", "ph", "ts", "dur", "pid", "tid", "args"}
        assert e["pid"] == 2 and isinstance(e["ts"], int) and e["dur"] >= 1
    sends = sorted((e for e in events if e["cat"] == "send"), key=lambda e: e["ts"])
    assert [e["args"]["key"] for e in sends] == ["0", "1", "2"]
    assert sends[0]["ts"] == 100_000_000 and sends[0]["dur"] == 1_000_000
    # the second send overlaps the first: another row; the third reuses the first row
    assert sends[0]["tid"] != sends[1]["tid"] and sends[2]["tid"] == sends[0]["tid"]
    names = {e["tid"]: e["args"]["name"] for e in loaded["traceEvents"] if e["name"] == "thread_name"}
    assert names[sends[0]["tid"]] == "send to alice" and names[sends[1]["tid"]] == "send to alice #1"
    assert {e["cat"] for e in events} == {"call", "get", "send", "arrive", "recv"}
    call = next(e for e in events if e["cat"] == "call")
    assert call["args"] == {"seq": 0, "party": "bob", "producer": "f", "keys": ["0"], "runs_here": True}
    assert loaded["otherData"] == {"party": "bob", "job": "job", "dropped_events": 0}


class _FakeMetric:
    def __init__(self):
        self.calls = []

    def inc(self, value, tags):
        self.calls.append(("inc", value, tags))

    def set(self, value, tags):
        self.calls.append(("set", value, tags))

    def observe(self, value, tags):
        self.calls.append(("observe", value, tags))


def test_metrics_exporter_sends_counter_increases_gauges_and_new_samples():
    exporter = RayMetricsExporter("alice", "job")
    sent, gauge, hist = _FakeMetric(), _FakeMetric(), _FakeMetric()
    exporter._counters["silofed_sent_messages"] = sent
    exporter._gauges["silofed_buffered_bytes"] = gauge
    exporter._histograms["silofed_send_latency_seconds"] = hist
    tags = (("peer", "bob"),)
    full = {"party": "alice", "job": "job", "peer": "bob"}
    exporter.export({"silofed_sent_messages": {tags: 3}}, {"silofed_buffered_bytes": {tags: 10}},
                    {"silofed_send_latency_seconds": {tags: [0.1, 0.2]}})
    exporter.export({"silofed_sent_messages": {tags: 3}}, {}, {})  # no change: no increment
    exporter.export({"silofed_sent_messages": {tags: 5}}, {}, {})
    assert sent.calls == [("inc", 3, full), ("inc", 2, full)]
    assert gauge.calls == [("set", 10, full)]
    assert hist.calls == [("observe", 0.1, full), ("observe", 0.2, full)]


async def _value(v):
    return v


def test_proxy_stats_count_per_peer_and_record_events():
    """bob and carol send to alice (in-process, no Ray): per-source figures match per-destination ones."""
    a, b, c = free_ports(3)
    addrs = {"alice": f"127.0.0.1:{a}", "bob": f"127.0.0.1:{b}", "carol": f"127.0.0.1:{c}"}

    def cfg(party):
        return TransportConfig(job="job", party=party, listen_address=addrs[party], connect_timeout_s=5,
                               peers={p: x for p, x in addrs.items() if p != party})

    async def main():
        alice = ReceiverProxy(cfg("alice"))
        await alice.start()
        bob, carol = SenderProxy(cfg("bob")), SenderProxy(cfg("carol"))
        try:
            for i in range(5):
                await bob.send("alice", str(i), "f", [_value(b"x" * 1000 * (i + 1))])
            await carol.send("alice", "0", "g", [_value([1, 2, 3])])
            got = await asyncio.wait_for(alice.recv("bob", "4", "f"), 5)
            assert got == b"x" * 5000
            await bob.send_control("alice", "done")  # a control message is not data: counted apart
            return await bob.stats(), await carol.stats(), await alice.stats(), \
                await bob.timeline(), await alice.timeline()
        finally:
            await bob.stop()
            await carol.stop()
            await alice.stop()

    bob_stats, carol_stats, alice_stats, bob_tl, alice_tl = asyncio.run(main())
    to_alice = bob_stats["alice"]
    assert to_alice["sent"] == 5 and to_alice["control"] == 1
    assert to_alice["failed"] == 0 and to_alice["in_flight"] == 0
    frm = alice_stats["from"]
    assert frm["bob"] == {"received": 5, "received_bytes": to_alice["sent_bytes"]}
    assert frm["carol"] == {"received": 1, "received_bytes": carol_stats["alice"]["sent_bytes"]}
    assert alice_stats["received"] == 6
    assert alice_stats["received_bytes"] == to_alice["sent_bytes"] + carol_stats["alice"]["sent_bytes"]
    lat = to_alice["latency_ms"]
    assert lat["count"] == 5 and 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    sends = bob_tl["events"]
    assert [(e[4], e[6]) for e in sends] == [("0", "data"), ("1", "data"), ("2", "data"), ("3", "data"),
                                             ("4", "data"), ("done", "done")] and bob_tl["dropped"] == 0
    assert sum(e[7] for e in sends[:5]) == to_alice["sent_bytes"] and {e[9] for e in sends} == {"ok"}
    kinds = [(e[0], e[3], e[4]) for e in alice_tl["events"]]
    assert ("arrive", "carol", "0") in kinds and ("recv", "bob", "4") in kinds
    assert sum(1 for k in kinds if k[0] == "arrive") == 6


def test_metrics_loop_is_idle_outside_ray_and_disables_itself_on_failure():
    from proxy._metrics import MetricsLoop

    async def main():
        loop = MetricsLoop("alice", "job", lambda: ({}, {}, {}), 0.01)
        loop.start()  # Ray is not initialised here: nothing runs
        assert loop._task is None
        loop.stop()
        broken = MetricsLoop("alice", "job", lambda: 1 / 0, 0.01)
        broken.export_now()  # logged once, then disabled
        assert broken._broken
        broken.export_now()

    asyncio.run(main())


def test_call_records_hold_no_container_the_garbage_collector_must_scan():
    # 100k records (the log's bound) holding a list each made every full collection of a
    # long-running driver ~33 ms slower here (58 vs 25 ms); records of atomic values are untracked
    from fed._config import load_job_config
    from fed._hosts import Hosts
    from fed._job import Job

    config = load_job_config(party="alice", addresses={"alice": "127.0.0.1:1", "bob": "127.0.0.1:2"})
    job = Job(config, Hosts(None, None, None), started_ray=False, track_send=lambda _: None)
    job.call("bob", "train_step", 2, lambda a, kw: None, (), {})  # runs at bob: only recorded here
    gc.collect()  # untracks the inner tuple of keys,
    gc.collect()  # then the record holding it
    (record,) = job.calls.snapshot()
    assert list(record[5]) == ["0#0", "0#1"]
    assert not gc.is_tracked(record)
