"""Run the parties of a job as local processes, their output prefixed by party.

Used by ``fed run`` and ``fed demo``. Each party is a child process in its own
session (so it and everything it starts, Ray included, can be signalled as one
process group) with ``FED_PARTY`` and ``FED_CONFIG`` set. When a party fails,
the others are stopped: SIGTERM first, SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import IO, Mapping, Optional, Sequence

from fed._config import CONFIG_ENV, PARTY_ENV

DEFAULT_GRACE_S = 10.0
_POLL_S = 0.1
# ANSI colours for party labels, chosen in party order.
_COLOURS = ("36", "33", "35", "32", "34", "31")


def use_colour(stream: IO[str]) -> bool:
    """Whether to colour labels on ``stream``: a terminal, and ``$NO_COLOR`` unset."""
    try:
        return stream.isatty() and not os.environ.get("NO_COLOR")
    except (AttributeError, ValueError):
        return False


class LinePrefixer:
    """Formats one party's output lines as ``[party] text``.

    Labels of all parties are padded to the same width so their text lines up.

    Args:
        party: the party name.
        width: length of the longest party name of the job.
        colour: an ANSI colour code for the label, or None for plain text.
    """

    def __init__(self, party: str, width: int = 0, colour: Optional[str] = None):
        label = f"[{party}]"
        pad = " " * max(0, width + 2 - len(label))
        self.prefix = f"\x1b[{colour}m{label}\x1b[0m{pad} " if colour else f"{label}{pad} "

    def format(self, line: bytes) -> str:
        """The prefixed line (decoded leniently, with exactly one trailing newline)."""
        return f"{self.prefix}{line.decode(errors='replace').rstrip(chr(13) + chr(10))}\n"


def make_prefixers(parties: Sequence[str], colour: bool) -> dict[str, LinePrefixer]:
    """One LinePrefixer per party, with aligned labels and distinct colours if ``colour``."""
    width = max((len(p) for p in parties), default=0)
    return {p: LinePrefixer(p, width, _COLOURS[i % len(_COLOURS)] if colour else None)
            for i, p in enumerate(parties)}


def party_env(party: str, config_path: str, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment of a party process: ``base`` plus FED_PARTY, FED_CONFIG, unbuffered output."""
    env = dict(os.environ if base is None else base)
    env[PARTY_ENV] = party
    env[CONFIG_ENV] = os.path.abspath(config_path)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def exec_party(party: str, config_path: str, command: Sequence[str]) -> None:
    """Replace this process by ``command`` running as ``party`` (``fed run --party``). Does not return."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], list(command), party_env(party, config_path))


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class PartyRunner:
    """Runs ``command`` once per party and waits for all of them.

    Args:
        parties: the party names, in config order.
        config_path: the config every party reads (exported as ``$FED_CONFIG``).
        command: the program and its arguments, e.g. ``[python, script.py, ...]``.
        out: where prefixed output goes.
        colour: colour the labels (default: when ``out`` is a terminal).
        grace_s: seconds between SIGTERM and SIGKILL when stopping parties.
        cwd: working directory of the parties.
    """

    def __init__(self, parties: Sequence[str], config_path: str, command: Sequence[str], *,
                 out: Optional[IO[str]] = None, colour: Optional[bool] = None,
                 grace_s: float = DEFAULT_GRACE_S, cwd: Optional[str] = None):
        self.parties = list(parties)
        self.config_path = config_path
        self.command = list(command)
        self.out = out if out is not None else sys.stdout
        self.grace_s = grace_s
        self.cwd = cwd
        self._prefixers = make_prefixers(self.parties, use_colour(self.out) if colour is None else colour)
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._interrupts = 0

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text)
            self.out.flush()

    def _note(self, message: str) -> None:
        self._write(f"[fed] {message}\n")

    def _pump(self, party: str, stream: IO[bytes]) -> None:
        prefixer = self._prefixers[party]
        for line in iter(stream.readline, b""):
            self._write(prefixer.format(line))
        stream.close()

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:  # noqa: ARG002 - signal handler signature
        # Only sets a counter: the main loop does the stopping (nothing blocking in a handler).
        self._interrupts += 1

    def run(self) -> dict[str, int]:
        """Start every party, forward output, stop the rest when one fails or on SIGINT/SIGTERM.

        Returns:
            each party's exit code (negative: killed by that signal).
        """
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        pumps = []
        try:
            for party in self.parties:
                proc = subprocess.Popen(
                    self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=party_env(party, self.config_path), cwd=self.cwd, start_new_session=True)
                self._procs[party] = proc
                pump = threading.Thread(target=self._pump, args=(party, proc.stdout), daemon=True,
                                        name=f"fed-run-{party}")
                pump.start()
                pumps.append(pump)
            codes = self._supervise()
        finally:
            for proc in self._procs.values():
                if proc.poll() is None:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
            for sig, old in handlers.items():
                signal.signal(sig, old)
        for pump in pumps:
            # A grandchild that inherited the pipe may keep it open a little longer.
            pump.join(timeout=5)
        return codes

    def _supervise(self) -> dict[str, int]:
        stopping_since: Optional[float] = None
        killed = False
        seen_interrupts = 0
        reaped: set[str] = set()
        while True:
            for party, proc in self._procs.items():
                code = proc.poll()
                if code is None or party in reaped:
                    continue
                reaped.add(party)
                # The party's own process is gone: clean up whatever it left in its group.
                _signal_group(proc, signal.SIGKILL)
                if code != 0 and stopping_since is None:
                    self._note(f"party {party} exited with code {code}: stopping the other parties")
                    stopping_since = self._terminate_all()
            if len(reaped) == len(self._procs):
                return {p: proc.returncode for p, proc in self._procs.items()}
            if self._interrupts > seen_interrupts:
                seen_interrupts = self._interrupts
                if stopping_since is None:
                    self._note("interrupted: stopping all parties (interrupt again to kill them)")
                    stopping_since = self._terminate_all()
                else:
                    stopping_since = -float("inf")  # a second interrupt kills at once
            if stopping_since is not None and not killed and time.monotonic() - stopping_since > self.grace_s:
                self._note(f"parties still running {self.grace_s:.0f} s after SIGTERM: killing them")
                for proc in self._procs.values():
                    if proc.poll() is None:
                        _signal_group(proc, signal.SIGKILL)
                killed = True
            time.sleep(_POLL_S)

    def _terminate_all(self) -> float:
        for proc in self._procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        return time.monotonic()

    @property
    def interrupted(self) -> bool:
        """Whether SIGINT or SIGTERM arrived while running."""
        return self._interrupts > 0


def overall_exit_code(codes: Mapping[str, int], interrupted: bool = False) -> int:
    """One exit code for the whole run: 0 only if every party exited 0.

    A party that exited with an error code decides (the first in config
    order); otherwise one killed by signal N gives 128+N. An interrupted run
    gives 130.
    """
    if interrupted:
        return 130
    for code in codes.values():
        if code > 0:
            return code
    for code in codes.values():
        if code < 0:
            return 128 - code
    return 0


# Ray's worker processes listen on 10002-19999 by default; ports the kernel hands
# out for outgoing connections and bind(0) come from ip_local_port_range.
_RAY_WORKER_PORTS = range(10002, 20000)
_EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def _ephemeral_ports() -> range:
    try:
        with open(_EPHEMERAL_RANGE_FILE) as f:
            low, high = (int(x) for x in f.read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def _quiet_port_range() -> range:
    """Ports neither Ray nor the kernel picks on its own: above Ray's worker
    ports and below the ephemeral range (or above it when that leaves none)."""
    ephemeral = _ephemeral_ports()
    start = _RAY_WORKER_PORTS.stop
    if ephemeral.start - start >= 1000:
        return range(start, ephemeral.start)
    return range(max(ephemeral.stop, start), 65536)


def free_local_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    A port that bind(0) returns lies in the kernel's ephemeral range, where any
    outgoing connection (Ray opens many while parties start) may take it before
    the party listens; so ports are drawn at random from a range nobody
    allocates automatically, and each is checked by binding it.
    """
    candidates = _quiet_port_range()
    chosen: list[int] = []
    for port in random.sample(candidates, min(len(candidates), 200 + 20 * n)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == n:
            return chosen
    raise RuntimeError(f"no {n} free TCP ports on 127.0.0.1 in {candidates.start}-{candidates.stop - 1}")
