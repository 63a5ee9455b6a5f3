"""Network namespaces for host tests: each party gets its own network stack.

``three_hosts`` creates a "switch" namespace holding a bridge and one namespace
per party, linked to the bridge by a veth pair, with addresses 10.77.0.1-3/24.
Nothing is added to the host's own network namespace. Everything (processes
inside the namespaces, then the namespaces with their links) is removed in the
fixture's finalizer, also when the test fails. Skips unless run as root with a
working ``ip netns``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass

import pytest

SUBNET = "10.77.0"


@dataclass(frozen=True)
class Host:
    """One party's network namespace."""

    party: str
    netns: str
    ip: str
    switch: str = ""  # the switch namespace
    port: str = ""  # this host's link on the switch's bridge

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def cut_link(self) -> None:
        """Unplug this host from the switch: its traffic to and from every other host is dropped."""
        _ip("-n", self.switch, "link", "set", self.port, "down")


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _remove_netns(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def three_hosts():
    if os.geteuid() != 0:
        pytest.skip("host tests need root (to create network namespaces)")
    if shutil.which("ip") is None:
        pytest.skip("host tests need the `ip` tool (iproute2)")
    tag = f"sf{os.getpid() % 100000}"
    switch = f"{tag}-sw"
    created: list[str] = []
    try:
        try:
            _ip("netns", "add", switch)
        except RuntimeError as exc:
            pytest.skip(f"ip netns does not work here: {exc}")
        created.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        hosts = {}
        for i, party in enumerate(("alice", "bob", "carol"), start=1):
            ns = f"{tag}-{party}"
            _ip("netns", "add", ns)
            created.append(ns)
            # veth created inside the party namespace; its peer moved into the switch
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}", "netns", switch)
            _ip("-n", switch, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", switch, "link", "set", f"p{i}", "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{i}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hosts[party] = Host(party, ns, f"{SUBNET}.{i}", switch, f"p{i}")
        yield hosts
    finally:
        for ns in reversed(created):
            _remove_netns(ns)
