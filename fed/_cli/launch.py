"""The one process supervisor: run the parties of a job as local processes.

Used by ``fed run`` and ``fed demo`` (output prefixed by party on the
terminal), by the party tests and by the benchmarks (output in one log file
per party, a module-level function run as each party, under a hard deadline).

Each party is a child process in its own session, so that it and everything it
starts, Ray included, can be signalled as one process group; ``FED_PARTY`` (and
``FED_CONFIG`` when a config is given) is set in its environment. When a party
fails, the others are stopped: SIGTERM first, SIGKILL after a grace period. At
the deadline, on a second interrupt and when the run ends, whatever is left of
every party's process tree (its group, its session, every descendant seen
while it ran) is killed.

``python -m fed._cli.launch SPEC RESULT_DIR`` is the entry point of one party
process started by :func:`run_bodies`.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Callable, Mapping, Optional, Sequence, Union

from fed._config import CONFIG_ENV, PARTY_ENV

DEFAULT_GRACE_S = 10.0
_POLL_S = 0.1
# How often the process trees are walked to remember every descendant (needs psutil).
_SCAN_S = 0.5
# ANSI colours for party labels, chosen in party order.
_COLOURS = ("36", "33", "35", "32", "34", "31")

StopRule = Callable[[str, int], bool]


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


def party_env(party: str, config_path: Optional[str], base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment of a party process: ``base`` plus FED_PARTY, FED_CONFIG (if a config is given),
    unbuffered output."""
    env = dict(os.environ if base is None else base)
    env[PARTY_ENV] = party
    if config_path is not None:
        env[CONFIG_ENV] = os.path.abspath(config_path)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def exec_party(party: str, config_path: str, command: Sequence[str]) -> None:
    """Replace this process by ``command`` running as ``party`` (``fed run --party``). Does not return."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], list(command), party_env(party, config_path))


def stop_on_failure(party: str, code: int) -> bool:  # noqa: ARG001 - a StopRule
    """The default stop rule: a party that exits non-zero stops the others."""
    return code != 0


# -- process trees -------------------------------------------------------------

def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _session_members(sids: set[int]) -> list[int]:
    """Processes (other than this one) whose session is one of ``sids``: those that left their group."""
    found: list[int] = []
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc: process groups only
        return found
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            if os.getsid(pid) in sids:
                found.append(pid)
        except OSError:
            pass
    return found


class _Tree:
    """One party's process: its own session, process group and every descendant seen."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.seen: dict[int, Any] = {}  # pid -> psutil.Process, kept after they are reparented

    def scan(self, psutil: Any) -> None:
        """Remember the current descendants (so they can be found after their parent died)."""
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.Error:
            pass

    def kill(self, psutil: Any) -> None:
        """SIGKILL the group, the session and every descendant seen."""
        _kill_trees([self], psutil)


def _kill_trees(trees: Sequence[_Tree], psutil: Any) -> None:
    """SIGKILL each tree's process group, every process of its session, and every descendant seen."""
    for tree in trees:
        _signal_group(tree.proc.pid, signal.SIGKILL)
    for pid in _session_members({tree.proc.pid for tree in trees}):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if psutil is None:
        return
    for tree in trees:
        for p in tree.seen.values():
            try:
                p.kill()  # psutil checks the pid was not reused
            except psutil.Error:
                pass


def _import_psutil() -> Any:
    try:
        import psutil
    except ImportError:  # not a dependency of silofed: groups and sessions are killed all the same
        return None
    return psutil


# -- the supervisor ------------------------------------------------------------

class PartyRunner:
    """Runs one process per party and supervises them until all have exited.

    Args:
        parties: the party names, in config order.
        config_path: the config every party reads (exported as ``$FED_CONFIG``), or None.
        command: the program and its arguments, e.g. ``[python, script.py, ...]``; or
            a mapping ``{party: command}`` for different commands.
        out: where prefixed output and the runner's notes go (default stdout).
        colour: colour the labels (default: when ``out`` is a terminal).
        grace_s: seconds between SIGTERM and SIGKILL when stopping parties.
        cwd: working directory of the parties.
        log_dir: if given, each party's stdout and stderr go to ``log_dir/{party}.log``
            instead of being prefixed to ``out``.
        timeout: a hard deadline in seconds for the whole run: at it, every party's
            process tree is killed (``timed_out`` is then true).
        env: the parties' base environment (default: this process's).
        start_delay: seconds after the start of the run at which a party is started (default 0).
        stop_rule: ``stop_rule(party, code)`` true when a party's exit should stop the
            others (default: a non-zero code).
        kind: what the processes are called in notes ("party").
        poll_s: how often exits are checked (the resolution of ``elapsed_s``).
        export_party: set ``$FED_PARTY`` (and ``$PYTHONUNBUFFERED``) for each process; false for
            commands that are not parties themselves.
    """

    def __init__(self, parties: Sequence[str], config_path: Optional[str],
                 command: Union[Sequence[str], Mapping[str, Sequence[str]]], *,
                 out: Optional[IO[str]] = None, colour: Optional[bool] = None,
                 grace_s: float = DEFAULT_GRACE_S, cwd: Optional[str] = None,
                 log_dir: Optional[Union[str, os.PathLike]] = None, timeout: Optional[float] = None,
                 env: Optional[Mapping[str, str]] = None, start_delay: Optional[Mapping[str, float]] = None,
                 stop_rule: StopRule = stop_on_failure, kind: str = "party", poll_s: float = _POLL_S,
                 export_party: bool = True):
        self.parties = list(parties)
        self.config_path = config_path
        if isinstance(command, Mapping):
            self.commands = {p: list(command[p]) for p in self.parties}
        else:
            self.commands = {p: list(command) for p in self.parties}
        self.out = out if out is not None else sys.stdout
        self.grace_s = grace_s
        self.cwd = cwd
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.timeout = timeout
        self.env = dict(env) if env is not None else None
        self.start_delay = dict(start_delay or {})
        self.stop_rule = stop_rule
        self.kind = kind
        self.poll_s = poll_s
        self.export_party = export_party
        self._prefixers = make_prefixers(self.parties, use_colour(self.out) if colour is None else colour)
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._trees: dict[str, _Tree] = {}
        self._interrupts = 0
        self._psutil = _import_psutil()
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.timed_out = False

    def log_path(self, party: str) -> Optional[Path]:
        """The file holding ``party``'s output (with ``log_dir``), else None."""
        return self.log_dir / f"{party}.log" if self.log_dir is not None else None

    def elapsed_s(self, party: str) -> Optional[float]:
        """Seconds from ``party``'s start to its exit (within the poll interval), or None if it never ran."""
        if party not in self.started:
            return None
        return self.ended.get(party, time.monotonic()) - self.started[party]

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

    def _start(self, party: str, pumps: list[threading.Thread]) -> None:
        if self.export_party:
            env = party_env(party, self.config_path, self.env)
        else:
            env = dict(os.environ if self.env is None else self.env)
        log = self.log_path(party)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "wb") as sink:
                proc = subprocess.Popen(self.commands[party], stdout=sink, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, cwd=self.cwd, start_new_session=True)
        else:
            proc = subprocess.Popen(self.commands[party], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=self.cwd, start_new_session=True)
            pump = threading.Thread(target=self._pump, args=(party, proc.stdout), daemon=True,
                                    name=f"fed-run-{party}")
            pump.start()
            pumps.append(pump)
        self.started[party] = time.monotonic()
        self._procs[party] = proc
        self._trees[party] = _Tree(proc)

    def run(self) -> dict[str, int]:
        """Start every party, forward output, stop the rest when one fails, at the deadline or on SIGINT/SIGTERM.

        Returns:
            each party's exit code (negative: killed by that signal); a party never
            started (the run ended before its start delay) is left out.
        """
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        pumps: list[threading.Thread] = []
        try:
            codes = self._supervise(pumps)
        finally:
            # whatever is left of every party, Ray included
            _kill_trees(list(self._trees.values()), self._psutil)
            for party, tree in self._trees.items():
                tree.proc.wait()
                self.ended.setdefault(party, time.monotonic())
            for sig, old in handlers.items():
                signal.signal(sig, old)
        for pump in pumps:
            # A grandchild that inherited the pipe may keep it open a little longer.
            pump.join(timeout=5)
        return codes

    def _supervise(self, pumps: list[threading.Thread]) -> dict[str, int]:
        begin = time.monotonic()
        deadline = None if self.timeout is None else begin + self.timeout
        pending = sorted(self.parties, key=lambda p: self.start_delay.get(p, 0.0))
        stopping_since: Optional[float] = None
        killed = False
        seen_interrupts = 0
        last_scan = 0.0
        while True:
            now = time.monotonic()
            while pending and stopping_since is None and now - begin >= self.start_delay.get(pending[0], 0.0):
                self._start(pending.pop(0), pumps)
            for party, proc in self._procs.items():
                code = proc.poll()
                if code is None or party in self.ended:
                    continue
                self.ended[party] = time.monotonic()
                # The party's own process is gone: clean up whatever it left in its group.
                _signal_group(proc.pid, signal.SIGKILL)
                if stopping_since is None and self.stop_rule(party, code):
                    self._note(f"{self.kind} {party} exited with code {code}: stopping the other {self._plural()}")
                    stopping_since = self._terminate_all()
                    pending.clear()
            if len(self.ended) == len(self._procs) and (not pending or stopping_since is not None):
                return {p: proc.returncode for p, proc in self._procs.items()}
            if deadline is not None and now > deadline:
                self.timed_out = True
                self._note(f"timed out after {self.timeout:g} s: killing every {self.kind}")
                _kill_trees(list(self._trees.values()), self._psutil)
                for party, proc in self._procs.items():
                    proc.wait()
                    self.ended.setdefault(party, time.monotonic())
                return {p: proc.returncode for p, proc in self._procs.items()}
            if self._interrupts > seen_interrupts:
                seen_interrupts = self._interrupts
                pending.clear()
                if stopping_since is None:
                    self._note(f"interrupted: stopping all {self._plural()} (interrupt again to kill them)")
                    stopping_since = self._terminate_all()
                else:
                    stopping_since = -float("inf")  # a second interrupt kills at once
            if stopping_since is not None and not killed and time.monotonic() - stopping_since > self.grace_s:
                self._note(f"{self._plural()} still running {self.grace_s:.0f} s after SIGTERM: killing them")
                for proc in self._procs.values():
                    if proc.poll() is None:
                        _signal_group(proc.pid, signal.SIGKILL)
                killed = True
            if self._psutil is not None and now - last_scan >= _SCAN_S:
                last_scan = now
                for party, tree in self._trees.items():
                    if party not in self.ended:
                        tree.scan(self._psutil)
            time.sleep(self.poll_s)

    def _plural(self) -> str:
        return "parties" if self.kind == "party" else f"{self.kind}s"

    def _terminate_all(self) -> float:
        for proc in self._procs.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        return time.monotonic()

    @property
    def interrupted(self) -> bool:
        """Whether SIGINT or SIGTERM arrived while running."""
        return self._interrupts > 0


# -- a module-level function run as each party ---------------------------------

BODY_MODULE = "fed._cli.launch"


@dataclass
class BodyRun:
    """What :func:`run_bodies` observed, party by party (in the order given)."""

    codes: dict[str, Optional[int]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    elapsed_s: dict[str, Optional[float]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    timed_out: bool = False
    interrupted: bool = False

    def log_text(self, party: str) -> str:
        """``party``'s output so far, or ``(not started)``."""
        path = self.logs.get(party)
        if path is None or not path.exists():
            return "(not started)"
        return path.read_text(errors="replace")

    def report(self, tail_chars: int = 20000) -> str:
        """Every party's exit code and the end of its log, one after the other."""
        return "\n".join(f"===== {p} (exit {code}) =====\n{self.log_text(p)[-tail_chars:]}"
                         for p, code in self.codes.items())


def importable_name(func: Callable[..., Any], root: Optional[Union[str, os.PathLike]] = None) -> str:
    """The module path of ``func``'s module as a child process imports it.

    A function of a script run directly (``__main__``) is named by the script's
    path relative to ``root`` (e.g. ``benchmarks/tools/x.py`` -> ``benchmarks.tools.x``).
    """
    module = func.__module__
    if module != "__main__":
        return module
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":  # run with python -m
        return spec.name
    if main.__file__ is None:
        raise ValueError(f"{func.__qualname__} is defined in an interactive __main__: define it in a module")
    path = Path(main.__file__).resolve()
    base = Path(root).resolve() if root is not None else Path.cwd()
    return ".".join(path.relative_to(base).with_suffix("").parts)


def run_bodies(body: Callable[..., Any], parties: Sequence[str], addresses: Mapping[str, str], *,
               workdir: Union[str, os.PathLike], args: Optional[Mapping[str, Any]] = None,
               timeout: float = 300, env: Optional[Mapping[str, str]] = None,
               start_delay: Optional[Mapping[str, float]] = None, stop_rule: StopRule = stop_on_failure,
               root: Optional[Union[str, os.PathLike]] = None, grace_s: float = 5.0,
               poll_s: float = _POLL_S, out: Optional[IO[str]] = None) -> BodyRun:
    """Run ``body(party, addresses, **args)`` as one process per party, under one deadline.

    ``body`` must be a module-level function of a module the parties can import
    (with ``root`` on their ``PYTHONPATH`` and as their working directory). Each
    party's output goes to ``workdir/{party}.log`` and the value its body
    returned comes back by pickle.

    Args:
        body: the function each party runs.
        parties: the party names; each process gets ``$FED_PARTY``.
        addresses: ``{party: "host:port"}``, passed to ``body``.
        workdir: where the spec, logs and results are written.
        args: keyword arguments of ``body`` (JSON-serialisable).
        timeout: the hard deadline in seconds: then every process tree is killed.
        env: the parties' base environment (default: this process's).
        start_delay: per party, seconds to wait before starting it.
        stop_rule: when a party's exit stops the others (default: a non-zero code).
        root: the directory the body's module is imported from (default: the current one).
        grace_s: seconds between SIGTERM and SIGKILL when stopping parties.
        poll_s: resolution of exit detection and of ``elapsed_s``.
        out: where the runner's notes go (default stdout).

    Returns:
        each party's exit code (None if never started), returned value (None if it
        returned none), lifetime and log path; whether the deadline passed.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base = Path(root).resolve() if root is not None else Path.cwd()
    spec = {"module": importable_name(body, base), "func": body.__qualname__,
            "addresses": dict(addresses), "args": dict(args or {})}
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(base), child_env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", BODY_MODULE, str(spec_path), str(workdir)]
    runner = PartyRunner(parties, None, command, out=out, colour=False, grace_s=grace_s, cwd=str(base),
                         log_dir=workdir, timeout=timeout, env=child_env, start_delay=start_delay,
                         stop_rule=stop_rule, poll_s=poll_s)
    codes = runner.run()
    run = BodyRun(timed_out=runner.timed_out, interrupted=runner.interrupted)
    for p in parties:
        run.codes[p] = codes.get(p)
        run.elapsed_s[p] = runner.elapsed_s(p)
        log = runner.log_path(p)
        if log is not None:
            run.logs[p] = log
        result = _result_path(workdir, p)
        run.values[p] = pickle.loads(result.read_bytes()) if result.exists() else None
    return run


def _result_path(workdir: Path, party: str) -> Path:
    return workdir / f"{party}.result"


def _body_main(argv: Sequence[str]) -> None:
    """One party process of :func:`run_bodies`: ``SPEC WORKDIR``, the party in ``$FED_PARTY``."""
    spec_path, workdir = argv[:2]
    party = os.environ[PARTY_ENV]
    spec = json.loads(Path(spec_path).read_text())
    target: Any = importlib.import_module(spec["module"])
    for part in spec["func"].split("."):
        target = getattr(target, part)
    value = target(party, spec["addresses"], **spec["args"])
    result = _result_path(Path(workdir), party)
    tmp = result.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(value))
    tmp.rename(result)
    sys.stdout.flush()



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


if __name__ == "__main__":
    _body_main(sys.argv[1:])
