"""Helpers shared by the test modules: the one place tests import helpers from.

- ports and configs: :func:`free_ports`, :func:`local_addresses`, :func:`write_config`;
- a test's own local Ray: :func:`start_local_ray` (retried once if Ray's node does not come up);
- multi-party runs: :func:`run_parties` runs a module-level function as one process
  per party (each with its own Ray) through the one launcher, ``fed._cli.launch``;
- inside a party: :func:`start_ray`, :func:`join`, :func:`leave` and :func:`placed`,
  which put the proxies where the test's ``placement`` says ("driver" or "actor");
- commands run as a user would: :func:`run_commands`.

``tests/hostile.py`` stays a module of its own: it is a tool (a raw gRPC client
speaking the wire format badly, and its catalogue of malformed messages), not a helper.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping, Optional, Sequence

import ray

from fed._cli.launch import BodyRun, PartyRunner, free_local_ports, run_bodies

REPO = Path(__file__).resolve().parents[1]
OBJECT_STORE_BYTES = 300 * 1024 * 1024

# -- ports and configs ----------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (outside Ray's and the kernel's ranges)."""
    return free_local_ports(n)


def local_addresses(parties: Sequence[str]) -> dict[str, str]:
    """``{party: "127.0.0.1:port"}`` on free ports."""
    return {p: f"127.0.0.1:{port}" for p, port in zip(parties, free_ports(len(parties)))}


def write_config(path: Path, ports: Mapping[str, int], extra: str = "") -> Path:
    """Write a job config ``clitest`` with ``{party: port}`` on 127.0.0.1, plus the YAML ``extra``."""
    lines = ["job_name: clitest", "parties:"] + [f"  {p}: {{address: 127.0.0.1:{port}}}" for p, port in ports.items()]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


# -- a test's own Ray -------------------------------------------------------------

_STARTUP_TIMEOUT_TEXT = "timed out during startup"
_LOG_NAMES = ("raylet.err", "raylet.out", "gcs_server.err", "gcs_server.out")


def start_local_ray(**init_kwargs: Any) -> None:
    """``ray.init(**init_kwargs)``, retried once if the node times out during startup.

    Ray gives its raylet 30 s to register with the GCS; on a loaded 2-core CI
    machine that has, rarely, not been enough. A node that does not come up is
    reported with the tail of its own logs and started once more; a second
    failure raises with those logs, so the cause is in the test output.
    """
    try:
        ray.init(**init_kwargs)
        return
    except Exception as first:  # Ray raises a bare Exception for this
        if _STARTUP_TIMEOUT_TEXT not in str(first):
            raise
        logs = node_log_tails()
        print(f"Ray did not start ({first}); starting it once more. Its logs:\n{logs}", file=sys.stderr)
        ray.shutdown()
    try:
        ray.init(**init_kwargs)
    except Exception as second:
        raise RuntimeError(f"Ray did not start twice ({second}); the last node's logs:\n{node_log_tails()}") from second


def node_log_tails(lines: int = 30) -> str:
    """The last ``lines`` of the raylet's and GCS's logs of this process's newest Ray session."""
    sessions = sorted(glob.glob(f"/tmp/ray/session_*_{os.getpid()}"))
    if not sessions:
        return f"(no Ray session of process {os.getpid()} under /tmp/ray)"
    parts = []
    for name in _LOG_NAMES:
        path = Path(sessions[-1]) / "logs" / name
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path}\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no raylet or GCS logs in {sessions[-1]}/logs)"


# -- proxy placement ----------------------------------------------------------------

PLACEMENTS = ("driver", "actor")
# The harness tells each party process its placement in this variable.
PLACEMENT_ENV = "SILOFED_TEST_PLACEMENT"
# With the "actor" placement each party's Ray has this custom resource and the
# sender and receiver actors each take one unit of it (cross_silo_comm.*_resource_label).
PROXY_RESOURCE = "silofed_test_proxies"


def placement() -> str:
    """This party's proxy placement: "driver" (the default) or "actor"."""
    value = os.environ.get(PLACEMENT_ENV, "driver")
    if value not in PLACEMENTS:
        raise ValueError(f"${PLACEMENT_ENV} is {value!r}, not one of {PLACEMENTS}")
    return value


def placed(config: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """``config`` (RayFed form) with the proxies placed as the test's placement says.

    With "actor", ``cross_silo_comm`` gets ``send_resource_label`` and
    ``recv_resource_label`` of one unit of :data:`PROXY_RESOURCE` each (unless it sets them).
    """
    out = copy.deepcopy(dict(config or {}))
    if placement() == "actor":
        comm = out.setdefault("cross_silo_comm", {})
        comm.setdefault("send_resource_label", {PROXY_RESOURCE: 1})
        comm.setdefault("recv_resource_label", {PROXY_RESOURCE: 1})
    return out


def start_ray() -> None:
    """Start this party's own small Ray, with the proxies' resource under the "actor" placement."""
    resources = {PROXY_RESOURCE: 2} if placement() == "actor" else None
    start_local_ray(num_cpus=2, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                    log_to_driver=True, resources=resources)


def join(party: str, addresses: Mapping[str, str], *, config: Optional[Mapping[str, Any]] = None,
         **kwargs: Any) -> None:
    """Start Ray and join the job with ``addresses``, the proxies placed as the test says."""
    import fed

    start_ray()
    fed.init(addresses=dict(addresses), party=party, config=placed(config), **kwargs)


def leave() -> None:
    """Leave the job and stop Ray."""
    import fed

    fed.shutdown()
    ray.shutdown()


# -- multi-party runs ---------------------------------------------------------------


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
        """Every party's exit code and log, one after the other."""
        return "\n".join(
            f"===== {p} (exit {r.returncode}) =====\n{r.log[-20000:]}" for p, r in self.parties.items()
        )


def run_parties(
    body: Callable[..., Any],
    parties: Sequence[str] = ("alice", "bob"),
    *,
    timeout: float = 120,
    placement: str = "driver",
    addresses: Optional[dict[str, str]] = None,
    args: Optional[dict] = None,
    start_delay: Optional[dict[str, float]] = None,
    expect_exit: Optional[dict[str, int]] = None,
    tmp_path: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
) -> RunResult:
    """Run ``body(party, addresses, **args)`` as one process per party, each with its own Ray.

    ``body`` must be a module-level function of an importable module; inside it,
    :func:`join` (or :func:`start_ray` and :func:`placed`) places the proxies as
    ``placement`` says. Every party runs under the hard deadline ``timeout``. A
    party exiting with a code other than ``expect_exit.get(party, 0)`` stops
    the others. Fails the test with every party's log on timeout or an
    unexpected exit code.

    Returns:
        each party's exit code, log, lifetime and the value its body returned.
    """
    import pytest

    if placement not in PLACEMENTS:
        raise ValueError(f"placement {placement!r} is not one of {PLACEMENTS}")
    expected = dict(expect_exit or {})
    workdir = Path(tmp_path or tempfile.gettempdir()) / f"parties-{os.getpid()}-{time.monotonic_ns()}"
    child_env = {**os.environ, **(env or {}), PLACEMENT_ENV: placement}
    run = run_bodies(body, parties, addresses or local_addresses(parties), workdir=workdir, args=args,
                     timeout=timeout, env=child_env, start_delay=start_delay, root=REPO,
                     stop_rule=lambda party, code: code != expected.get(party, 0))
    if run.interrupted:
        raise KeyboardInterrupt
    result = _run_result(run)
    if run.timed_out:
        pytest.fail(f"parties timed out after {timeout} s\n{result.logs()}", pytrace=False)
    bad = {p: r.returncode for p, r in result.parties.items() if r.returncode != expected.get(p, 0)}
    if bad:
        pytest.fail(f"parties exited with unexpected codes {bad}\n{result.logs()}", pytrace=False)
    return result


def _run_result(run: BodyRun) -> RunResult:
    result = RunResult()
    for p, code in run.codes.items():
        result.parties[p] = PartyResult(p, code, run.log_text(p), run.values[p], run.elapsed_s[p] or 0.0)
    return result


# -- commands, as a user runs them ----------------------------------------------------


def run_commands(*argvs: Sequence[str], timeout: float) -> list[str]:
    """Run the commands ``argvs`` at once from the repository root, under one deadline; returns their outputs.

    Each runs in its own session through the one launcher; on timeout or a
    non-zero exit every command still running, and every process it started
    (parties, their Ray), is killed and the test fails with all outputs.
    """
    import pytest

    names = [f"command{i}" for i in range(len(argvs))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "RAY_USAGE_STATS_ENABLED": "0"}
    with tempfile.TemporaryDirectory(prefix="silofed-commands-") as logs:
        runner = PartyRunner(names, None, dict(zip(names, argvs)), cwd=str(REPO), log_dir=logs, timeout=timeout,
                             env=env, grace_s=5.0, kind="command", export_party=False)
        codes = runner.run()
        if runner.interrupted:
            raise KeyboardInterrupt
        outs = [runner.log_path(n).read_text(errors="replace") for n in names]
    report = "\n".join(f"===== {' '.join(a)} (exit {codes.get(n)}) =====\n{o}" for n, a, o in zip(names, argvs, outs))
    if runner.timed_out:
        pytest.fail(f"timed out after {timeout} s\n{report}", pytrace=False)
    if any(codes.get(n) != 0 for n in names):
        pytest.fail(f"a command failed\n{report}", pytrace=False)
    return outs


# -- transport proxies in this process ------------------------------------------------


def two_addresses(parties: Sequence[str] = ("alice", "bob")) -> dict[str, str]:
    """``{party: "127.0.0.1:port"}`` on free ports (alice and bob by default)."""
    return {p: f"127.0.0.1:{port}" for p, port in zip(parties, free_ports(len(parties)))}


def transport_config(addresses: Mapping[str, str], party: str, **options: Any) -> Any:
    """``party``'s ``proxy.TransportConfig`` in job "job", its peers the other ``addresses``."""
    from proxy import TransportConfig

    return TransportConfig(job="job", party=party, listen_address=addresses[party],
                           peers={p: a for p, a in addresses.items() if p != party}, **options)


@contextlib.asynccontextmanager
async def receiver_and_sender(alice: Optional[dict] = None, bob: Optional[dict] = None) -> AsyncIterator[tuple]:
    """alice's ``ReceiverProxy``, listening, and bob's ``SenderProxy`` (with these config options);
    both stopped afterwards."""
    from proxy import ReceiverProxy, SenderProxy

    addresses = two_addresses()
    receiver = ReceiverProxy(transport_config(addresses, "alice", **(alice or {})))
    await receiver.start()
    sender = SenderProxy(transport_config(addresses, "bob", **(bob or {})))
    try:
        yield receiver, sender
    finally:
        await sender.stop()
        await receiver.stop()


@contextlib.asynccontextmanager
async def receiver_and_raw_stream(**alice: Any) -> AsyncIterator[tuple]:
    """alice's ``ReceiverProxy`` and a PushStream call to it that sends raw bytes (no sender proxy)."""
    import grpc

    from proxy import ReceiverProxy
    from proxy import _wire_pb2 as wire
    from proxy._service import PUSH_STREAM

    addresses = two_addresses()
    receiver = ReceiverProxy(transport_config(addresses, "alice", **alice))
    await receiver.start()
    channel = grpc.aio.insecure_channel(addresses["alice"])
    try:
        yield receiver, channel.stream_stream(PUSH_STREAM, request_serializer=bytes,
                                              response_deserializer=wire.Ack.FromString)()
    finally:
        await channel.close()
        await receiver.stop()


def small_message(key: str, dst: str = "alice", payload: bytes = b"\x80\x05N.") -> bytes:
    """A raw Small message from bob to ``dst`` carrying ``None`` (pickle of None), as the sender builds it."""
    from proxy import _wire_pb2 as wire
    from proxy._service import PROTOCOL_VERSION

    header = wire.Header(version=PROTOCOL_VERSION, job="job", src="bob", dst=dst, key=key, producer="f",
                         pickle_size=len(payload))
    return wire.Small(header=header, payload=payload, id=int(key)).SerializeToString()


# -- processes on network hosts ----------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    """The environment for a command run from the repository root (silofed importable, no usage stats)."""
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def kill_process_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process it started."""
    import psutil

    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        proc.kill()
        return
    for p in family:
        try:
            p.kill()
        except psutil.Error:
            pass
