"""fed.stats and fed.timeline across three parties: figures agree between the two ends of each link."""

from __future__ import annotations

import json
from pathlib import Path

import fed
from fed import _runtime
from tests.support import join, leave, run_parties

PARTIES = ("alice", "bob", "carol")
ROUNDS = 6


@fed.remote
def inc(x, by):
    return x + by


@fed.remote
def add(*xs):
    return sum(xs)


def rounds_job(party, addresses, rounds, trace_dir):
    """Each round every party adds to alice's running total; everyone gets the new total."""
    join(party, addresses)
    total = 0
    keys = []
    for r in range(rounds):
        xs = [inc.party(p).remote(total, i + 1) for i, p in enumerate(PARTIES)]
        total = add.party("alice").remote(*xs)
        keys.append(total.get_fed_task_id())
        value = fed.get(total)
    # every object crossed because a fed.get here needed it: once local sends are acked, the
    # counters at both ends of each link are final
    assert _runtime.current().cleanup.wait_for_sends(30)
    stats = fed.stats()
    path = Path(trace_dir) / f"{party}.json"
    written = fed.timeline(path)
    leave()
    return {"value": value, "stats": stats, "trace": str(path), "written": written, "total_keys": keys}


def test_stats_agree_across_links_and_timeline_matches_the_job(tmp_path):
    run = run_parties(rounds_job, PARTIES, timeout=150, args={"rounds": ROUNDS, "trace_dir": str(tmp_path)})
    out = {p: run.value(p) for p in PARTIES}
    expected = 0
    for _ in range(ROUNDS):
        expected = 3 * expected + 1 + 2 + 3
    assert {o["value"] for o in out.values()} == {expected}

    # -- stats: what a party sent to a peer is what the peer received from it
    for src in PARTIES:
        for dst in PARTIES:
            if src == dst:
                continue
            sent = out[src]["stats"]["sent"].get(dst, {"sent": 0, "sent_bytes": 0})
            received = out[dst]["stats"]["received"]["from"][src]
            assert (sent["sent"], sent["sent_bytes"]) == (received["received"], received["received_bytes"]), (src, dst)
    # alice sends each running total to bob and carol once (used by the next round's inc and fed.get);
    # bob and carol send their inc result to alice each round and nothing to each other
    for peer in ("bob", "carol"):
        assert out["alice"]["stats"]["sent"][peer]["sent"] == ROUNDS
        assert out[peer]["stats"]["sent"]["alice"]["sent"] == ROUNDS
        assert out["alice"]["stats"]["received"]["from"][peer]["received"] == ROUNDS
    assert "carol" not in out["bob"]["stats"]["sent"] and out["carol"]["stats"]["received"]["from"]["bob"]["received"] == 0
    for party in PARTIES:
        received = out[party]["stats"]["received"]
        assert received["received"] == sum(f["received"] for f in received["from"].values())
        assert received["received_bytes"] == sum(f["received_bytes"] for f in received["from"].values())
        assert received["rejected"] == {} and received["buffered_bytes"] == 0
        for peer, s in out[party]["stats"]["sent"].items():
            lat = s["latency_ms"]
            assert s["in_flight"] == 0 and s["failed"] == 0
            assert lat["count"] == s["sent"] and lat["window"] == s["sent"]
            assert 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"], (party, peer, lat)

    # -- timeline: a Chrome trace whose transfers are exactly the job's
    traces = {p: json.loads(Path(out[p]["trace"]).read_text()) for p in PARTIES}
    events = {p: [e for e in t["traceEvents"] if e["ph"] == "X"] for p, t in traces.items()}
    for p in PARTIES:
        assert out[p]["written"] == len(events[p])
        for e in traces[p]["traceEvents"]:
            assert {"name", "ph", "pid", "tid", "args"} <= set(e)
            if e["ph"] == "X":
                assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 1
        calls = [e["args"] for e in events[p] if e["cat"] == "call"]
        assert [c["seq"] for c in calls] == list(range(4 * ROUNDS))
        assert [c["producer"] for c in calls[:4]] == ["inc", "inc", "inc", "add"]
        assert sum(1 for e in events[p] if e["cat"] == "get") == ROUNDS

    def transfers(party, cat, peer):
        return sorted((e["args"]["key"], e["args"]["producer"], e["args"]["bytes"])
                      for e in events[party] if e["cat"] == cat and e["args"]["peer"] == peer)

    total_keys = sorted(out["alice"]["total_keys"])
    for peer in ("bob", "carol"):
        sends = transfers("alice", "send", peer)
        assert sends == transfers(peer, "recv", "alice") == transfers(peer, "arrive", "alice")
        assert [k for k, _, _ in sends] == total_keys and {pr for _, pr, _ in sends} == {"add"}
        assert sum(b for _, _, b in sends) == out["alice"]["stats"]["sent"][peer]["sent_bytes"]
        back = transfers(peer, "send", "alice")
        assert back == transfers("alice", "recv", peer) and len(back) == ROUNDS
        assert {pr for _, pr, _ in back} == {"inc"}
    # no metrics export trouble in any proxy
    for p in PARTIES:
        log = run.parties[p].log
        assert "exporting Ray metrics failed" not in log, log
