"""The demo job with alice, bob and carol on three network hosts (namespaces)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support import REPO, kill_process_tree, subprocess_env

pytestmark = pytest.mark.hosts

PORT = 11010




def test_demo_across_network_namespaces(three_hosts, tmp_path):
    config = tmp_path / "hosts.yaml"
    config.write_text("job_name: hosts\nparties:\n" + "".join(
        f"  {h.party}: {{address: {h.ip}:{PORT}}}\n" for h in three_hosts.values()))
    fed = [sys.executable, "-m", "fed"]
    alice = three_hosts["alice"]

    # before anyone runs: alice's port is free, her peers refuse connections across the bridge
    check = subprocess.run(alice.command(*fed, "check", "--config", str(config), "--party", "alice",
                                         "--timeout", "2"), capture_output=True, text=True, timeout=60,
                           cwd=REPO, env=subprocess_env())
    assert check.returncode == 1, check.stdout + check.stderr
    assert "10.77.0.2:11010  FAIL: cannot connect: Connection refused" in check.stdout, check.stdout
    assert "listen port free" in check.stdout

    procs = {h.party: subprocess.Popen(
        h.command(*fed, "run", "--party", h.party, "--config", str(config), "examples/logistic_regression.py",
                  "--rounds", "4"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=subprocess_env(), start_new_session=True)
        for h in three_hosts.values()}
    deadline = time.monotonic() + 180
    outs = {}
    try:
        for party, proc in procs.items():
            outs[party] = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))[0]
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                kill_process_tree(proc)
        for party, proc in procs.items():
            outs.setdefault(party, proc.communicate()[0])
    report = "\n".join(f"===== {p} (exit {procs[p].returncode}) =====\n{o}" for p, o in outs.items())
    assert all(proc.returncode == 0 for proc in procs.values()), report
    finals = {[line for line in o.splitlines() if line.startswith("final accuracy")][0].split()[2]
              for o in outs.values()}
    assert len(finals) == 1 and float(finals.pop()) > 0.75, report
    assert f"listening on {alice.ip}:{PORT}" in outs["alice"], report
