"""The examples and ``fed demo``, run exactly as a user would: through the ``fed`` command.

Each run is one ``python -m fed ...`` subprocess under a hard timeout; on timeout
it and every process it started (parties, their Ray) are killed and the test
fails with the whole output.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from fed._cli import write_local_config

pytestmark = pytest.mark.parties

REPO = Path(__file__).resolve().parents[2]


def fed_command(*argv: str, timeout: float) -> str:
    """Run ``fed ARGV`` from the repository root; returns its output, fails the test if it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "fed", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        family = [proc.pid]
        try:
            family += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        except psutil.Error:
            pass
        for pid in family:  # the parties run in their own sessions: kill each one
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        out, _ = proc.communicate()
        pytest.fail(f"`fed {' '.join(argv)}` timed out after {timeout} s; output:\n{out}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"`fed {' '.join(argv)}` exited with {proc.returncode}; output:\n{out}", pytrace=False)
    return out


def party_lines(out: str, party: str) -> list[str]:
    """The lines ``party`` printed, without the prefix."""
    prefix = re.compile(rf"^\[{party}\]\s+")
    return [prefix.sub("", line) for line in out.splitlines() if prefix.match(line)]


def losses(lines: list[str]) -> list[float]:
    return [float(m.group(1)) for m in (re.match(r"round +\d+ +loss ([0-9.]+)$", s) for s in lines) if m]


def accuracy(lines: list[str]) -> float:
    found = [float(m.group(1)) for m in (re.match(r"final accuracy ([0-9.]+) ", s) for s in lines) if m]
    assert len(found) == 1, lines
    return found[0]


def test_fed_demo_trains_across_three_parties():
    out = fed_command("demo", "--rounds", "6", timeout=150)
    per_party = {p: party_lines(out, p) for p in ("alice", "bob", "carol")}
    curves = {p: losses(lines) for p, lines in per_party.items()}
    assert len(curves["alice"]) == 6, out
    assert curves["alice"] == curves["bob"] == curves["carol"], out  # every party sees the global model
    assert all(a > b for a, b in zip(curves["alice"], curves["alice"][1:])), curves["alice"]
    assert curves["alice"][0] == pytest.approx(0.6931, abs=1e-3)  # the zero model's loss, ln 2
    assert {accuracy(lines) for lines in per_party.values()} == {accuracy(per_party["alice"])}
    assert accuracy(per_party["alice"]) > 0.75
    assert out.rstrip().endswith("[fed] demo finished")


def test_split_learning_example_with_fed_run(tmp_path):
    config = tmp_path / "two.yaml"
    write_local_config(config, ("alice", "bob"), "split")
    out = fed_command("run", "--config", str(config), "examples/split_learning.py", "--rounds", "20", timeout=150)
    alice, bob = party_lines(out, "alice"), party_lines(out, "bob")
    curve = losses(alice)
    assert curve == losses(bob) and len(curve) == 5, out  # rounds 1, 5, 10, 15, 20
    assert curve[-1] < curve[0] - 0.2, curve
    assert accuracy(alice) == accuracy(bob) > 0.8


def test_big_array_example_ships_256_mib_intact(tmp_path):
    config = tmp_path / "two.yaml"
    write_local_config(config, ("alice", "bob"), "big")
    out = fed_command("run", "--config", str(config), "examples/big_array.py", timeout=180)
    for party in ("alice", "bob"):
        lines = party_lines(out, party)
        assert "checksums match" in lines, out
        digests = {s.split()[-1] for s in lines if " sha256 " in s}
        assert len(digests) == 1, lines
