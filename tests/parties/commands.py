"""Run commands from the repository root as a user would, each under one hard deadline.

On timeout or a non-zero exit every command still running, and every process
it started (parties, their Ray), is killed and the test fails with all outputs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]


def _start(argv: Sequence[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env=env, start_new_session=True)


def _kill_family(proc: subprocess.Popen) -> None:
    family = [proc.pid]
    try:
        family += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        pass
    for pid in family:  # parties run in sessions of their own: kill each process
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def run_commands(*argvs: Sequence[str], timeout: float) -> list[str]:
    """Run the commands ``argvs`` at once, under one deadline; returns their outputs.

    Fails the test with every output if one fails or time runs out.
    """
    procs = [_start(argv) for argv in argvs]
    deadline = time.monotonic() + timeout
    outs, timed_out = [], False
    try:
        for proc in procs:
            try:
                outs.append(proc.communicate(timeout=max(0.1, deadline - time.monotonic()))[0])
            except subprocess.TimeoutExpired:
                timed_out = True
                break
    finally:
        for proc in procs:
            if proc.poll() is None:
                _kill_family(proc)
        outs += [proc.communicate()[0] for proc in procs[len(outs):]]
    report = "\n".join(f"===== {' '.join(a)} (exit {p.returncode}) =====\n{o}" for a, p, o in zip(argvs, procs, outs))
    if timed_out:
        pytest.fail(f"timed out after {timeout} s\n{report}", pytrace=False)
    if any(p.returncode != 0 for p in procs):
        pytest.fail(f"a command failed\n{report}", pytrace=False)
    return outs
