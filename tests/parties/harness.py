"""Run a test body as several party processes, each with its own Ray.

Each party is a fresh ``python`` process in its own session, started with
``FED_PARTY`` set and its output in a log file. Every party runs under one hard
deadline: on timeout or a non-zero exit, all parties (and every process they
started, Ray included) are killed and the test fails showing every party's log.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import psutil
import pytest

from fed._cli.launch import free_local_ports

REPO = Path(__file__).resolve().parents[2]
OBJECT_STORE_BYTES = 300 * 1024 * 1024


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1."""
    return free_local_ports(n)


def local_addresses(parties: Sequence[str]) -> dict[str, str]:
    """``{party: "127.0.0.1:port"}`` on free ports."""
    return {p: f"127.0.0.1:{port}" for p, port in zip(parties, free_ports(len(parties)))}


@dataclass
class PartyResult:
    """What one party process did."""

    party: str
    returncode: Optional[int]
    log: str
    value: Any = None
    elapsed_s: float = 0.0


@dataclass
class RunResult:
    """Outcome of a multi-party run: per-party results."""

    parties: dict[str, PartyResult] = field(default_factory=dict)

    def value(self, party: str) -> Any:
        """What the body returned at ``party``."""
        return self.parties[party].value

    def logs(self) -> str:
        """Every party's log, one after the other."""
        return "\n".join(
            f"===== {p} (exit {r.returncode}) =====\n{r.log[-20000:]}" for p, r in self.parties.items()
        )


def _kill_tree(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


def run_parties(
    body: Callable,
    parties: Sequence[str] = ("alice", "bob"),
    *,
    timeout: float = 120,
    addresses: Optional[dict[str, str]] = None,
    args: Optional[dict] = None,
    start_delay: Optional[dict[str, float]] = None,
    expect_exit: Optional[dict[str, int]] = None,
    tmp_path: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
) -> RunResult:
    """Run ``body(party, addresses, **args)`` as one process per party.

    ``body`` must be a module-level function of an importable module. Fails the
    test (with all logs) if any party times out, or exits with a code other
    than ``expect_exit.get(party, 0)``.

    Returns:
        each party's exit code, log and the value its body returned.
    """
    addresses = addresses or local_addresses(parties)
    start_delay = start_delay or {}
    expect_exit = expect_exit or {}
    workdir = Path(tmp_path or os.environ.get("TMPDIR", "/tmp")) / f"parties-{os.getpid()}-{time.monotonic_ns()}"
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {"module": body.__module__, "func": body.__qualname__, "addresses": addresses, "args": args or {}}
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join([str(REPO), child_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    child_env.update(env or {})

    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    started: dict[str, float] = {}
    descendants: dict[int, psutil.Process] = {}
    begin = time.monotonic()
    pending_start = sorted(parties, key=lambda p: start_delay.get(p, 0.0))
    deadline = begin + timeout
    timed_out = False
    try:
        while True:
            now = time.monotonic()
            while pending_start and now - begin >= start_delay.get(pending_start[0], 0.0):
                p = pending_start.pop(0)
                logs[p] = workdir / f"{p}.log"
                out = open(logs[p], "wb")
                procs[p] = subprocess.Popen(
                    [sys.executable, "-m", "tests.parties._party_main", str(spec_path), p, str(workdir / f"{p}.result")],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**child_env, "FED_PARTY": p}, cwd=str(REPO), start_new_session=True,
                )
                out.close()
                started[p] = now
            for proc in procs.values():
                try:
                    for c in psutil.Process(proc.pid).children(recursive=True):
                        descendants[c.pid] = c
                except psutil.Error:
                    pass
            if not pending_start and all(proc.poll() is not None for proc in procs.values()):
                break
            if now > deadline:
                timed_out = True
                break
            time.sleep(0.2)
    finally:
        alive = []
        for proc in procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
        for d in descendants.values():
            try:
                if d.is_running():
                    alive.append(d)
            except psutil.Error:
                pass
        _kill_tree(alive)
        for proc in procs.values():
            proc.wait()

    result = RunResult()
    for p in parties:
        proc = procs.get(p)
        log = logs[p].read_text(errors="replace") if p in logs and logs[p].exists() else "(not started)"
        value = None
        result_file = workdir / f"{p}.result"
        if result_file.exists():
            value = pickle.loads(result_file.read_bytes())
        result.parties[p] = PartyResult(p, proc.returncode if proc else None, log, value,
                                        time.monotonic() - started.get(p, begin))
    if timed_out:
        pytest.fail(f"parties timed out after {timeout} s\n{result.logs()}", pytrace=False)
    bad = {p: r.returncode for p, r in result.parties.items() if r.returncode != expect_exit.get(p, 0)}
    if bad:
        pytest.fail(f"parties exited with unexpected codes {bad}\n{result.logs()}", pytrace=False)
    return result
