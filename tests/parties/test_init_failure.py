"""fed.init failing part-way leaves nothing behind: a retry in the same process succeeds."""

from __future__ import annotations

import socket
import threading

import pytest
import ray

import fed
from tests.support import run_parties


def _leftovers(port: int) -> dict:
    """What a failed fed.init could have left running in this process."""
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", port))
        port_free = True
    except OSError:
        port_free = False
    finally:
        probe.close()
    threads = sorted(t.name for t in threading.enumerate() if t.name.startswith("silofed"))
    return {"ray": ray.is_initialized(), "port_free": port_free, "threads": threads}


def init_then_retry(party, addresses, which):
    port = int(addresses[party].rsplit(":", 1)[1])
    label = {"gateway": 1}  # no node of this Ray offers it: the proxy actor cannot start
    comm = {"timeout_ms": 3000, "send_resource_label" if which == "sender" else "recv_resource_label": label}
    ray_init = {"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024}
    try:
        fed.init(addresses=addresses, party=party, config={"cross_silo_comm": comm}, ray_init_kwargs=ray_init)
        error = None
    except fed.ConfigError as exc:
        error = str(exc)
    after_failure = _leftovers(port)
    fed.init(addresses=addresses, party=party, ray_init_kwargs=ray_init)  # the same job, placed in the driver
    named = [n for n in ray.util.list_named_actors() if n.startswith("silofed:")]
    fed.shutdown()
    return {"error": error, "after_failure": after_failure, "named_actors": named}


@pytest.mark.parametrize("which", ["receiver", "sender"])
def test_a_proxy_actor_that_cannot_start_leaves_no_thread_port_actor_or_ray(which):
    run = run_parties(init_then_retry, ("alice",), args={"which": which}, timeout=90)
    out = run.value("alice")
    assert out["error"] is not None and f":alice:{which}" in out["error"]  # names the proxy
    assert "did not start" in out["error"] and "gateway" in out["error"]  # says why and what to do
    assert out["after_failure"] == {"ray": False, "port_free": True, "threads": []}
    assert out["named_actors"] == []  # the retry runs in the driver; no actor of the failed try is left
