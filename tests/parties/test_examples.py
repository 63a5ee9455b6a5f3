"""The examples and ``fed demo``, run exactly as a user would: through the ``fed`` command.

Each run is one ``python -m fed ...`` subprocess under a hard timeout
(``run_commands`` of tests/support.py, through the one launcher).
"""

from __future__ import annotations

import re
import sys

import pytest

from fed._cli.commands import write_local_config
from tests.support import REPO, run_commands

pytestmark = pytest.mark.parties


def fed_commands(*argvs, timeout: float) -> list[str]:
    """Run several ``fed ARGV`` at once from the repository root, under one deadline.

    Returns their outputs; fails the test with every output if one fails or time runs out.
    """
    return run_commands(*[(sys.executable, "-m", "fed", *argv) for argv in argvs], timeout=timeout)


def fed_command(*argv: str, timeout: float) -> str:
    """Run ``fed ARGV`` from the repository root under a hard timeout; returns its output."""
    return fed_commands(argv, timeout=timeout)[0]


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


def test_readme_quickstart_one_party_per_command(tmp_path):
    config = tmp_path / "two.yaml"
    write_local_config(config, ("alice", "bob"), "quick")
    script = tmp_path / "quickstart.py"
    script.write_text((REPO / "examples" / "quickstart.py").read_text()
                      .replace('"configs/local-2party.yaml"', repr(str(config))))
    # production style: each party started on its own, in the foreground, unprefixed
    # (`fed run` of all parties at once is exercised by the tests above)
    outs = fed_commands(*[("run", "--party", p, "--config", str(config), str(script)) for p in ("alice", "bob")],
                        timeout=150)
    for out in outs:
        assert out.splitlines()[-1] == "grand total: 560", out
