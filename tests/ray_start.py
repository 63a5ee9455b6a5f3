"""Start a test's own local Ray, once more if Ray's node does not come up.

Ray gives its raylet 30 s to register with the GCS; on a loaded 2-core CI
machine that has, rarely, not been enough, and every test of the module then
errors at setup without saying why. Here a node that does not come up is
reported with the tail of its own logs and started once more; a second failure
raises with those logs, so the cause is in the test output.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import Any

import ray

_STARTUP_TIMEOUT_TEXT = "timed out during startup"
_LOG_NAMES = ("raylet.err", "raylet.out", "gcs_server.err", "gcs_server.out")


def start_local_ray(**init_kwargs: Any) -> None:
    """``ray.init(**init_kwargs)``, retried once if the node times out during startup."""
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
