"""A party's network link is cut mid-job: the others fail cleanly and every process exits."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import REPO, kill_process_tree, subprocess_env

pytestmark = pytest.mark.hosts

PORT = 11020
PEER_TIMEOUT_S = 3.0
# detection may lag the liveness timeout by one ping interval plus scheduling on a busy machine
DETECTION_SLACK_S = 5.0
EXIT_DEADLINE_S = 45.0


class _Output:
    """Collects a process's output lines in a thread, with the time each line was read."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self._cond:
                self.lines.append((time.time(), line.rstrip("\n")))
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        """Wait until a line contains ``text``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for _, line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def text(self) -> str:
        self._thread.join(timeout=5)
        with self._cond:
            return "\n".join(line for _, line in self.lines)


def test_cutting_a_link_fails_the_others_with_peer_unavailable(three_hosts, tmp_path):
    config = tmp_path / "hosts.yaml"
    config.write_text(
        "job_name: linkcut\n"
        "parties:\n" + "".join(f"  {h.party}: {{address: {h.ip}:{PORT}}}\n" for h in three_hosts.values()) +
        f"cross_silo_comm:\n  peer_timeout_ms: {int(PEER_TIMEOUT_S * 1000)}\n  ping_interval_ms: 500\n"
        "  timeout_ms: 5000\n")
    job = str(Path(__file__).with_name("_loop_job.py"))
    procs = {h.party: subprocess.Popen(
        h.command(sys.executable, "-m", "fed", "run", "--party", h.party, "--config", str(config), job, "100000"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=subprocess_env(), start_new_session=True)
        for h in three_hosts.values()}
    outs = {p: _Output(proc) for p, proc in procs.items()}
    cut_at = None
    try:
        # the job runs: a few rounds everywhere
        started = all(out.wait_for("round 3", timeout=120) for out in outs.values())
        if started:
            three_hosts["carol"].cut_link()
            cut_at = time.time()
            deadline = time.monotonic() + EXIT_DEADLINE_S
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    break
    finally:
        hung = [p for p, proc in procs.items() if proc.poll() is None]
        for proc in procs.values():
            if proc.poll() is None:
                kill_process_tree(proc)
        for proc in procs.values():
            proc.wait(timeout=30)
    logs = {p: out.text() for p, out in outs.items()}
    report = "\n".join(f"===== {p} (exit {procs[p].returncode}) =====\n{logs[p]}" for p in procs)
    assert started, "the job did not get going:\n" + report
    assert not hung, f"{hung} did not exit within {EXIT_DEADLINE_S:.0f} s of the cut:\n" + report

    for party in ("alice", "bob"):
        failed = [line for line in logs[party].splitlines() if line.startswith("FAILED ")]
        assert failed, f"{party} did not fail:\n" + report
        kind, peer, stamp, message = failed[0].split(" ", 4)[1:]
        assert kind == "PeerUnavailableError", report
        assert "'carol'" in message, f"{party}'s error does not name carol: {message}"
        took = float(stamp.removeprefix("t=")) - cut_at
        assert took <= PEER_TIMEOUT_S + DETECTION_SLACK_S, f"{party} noticed the cut after {took:.1f} s:\n" + report
        assert procs[party].returncode != 0, report
    # carol, cut off, loses both peers and fails too
    assert "FAILED PeerUnavailableError" in logs["carol"] and procs["carol"].returncode != 0, report
