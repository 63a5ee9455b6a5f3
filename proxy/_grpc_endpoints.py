"""Which TCP endpoints gRPC uses in this process: its polling ones (reps/0110).

gRPC's newer EventEngine endpoints read each message on an EventEngine
thread and hand it to the completion queue's poller thread; its polling
endpoints read it on the poller thread itself. One thread hand-off less per
message measured 25-30% off a small message's round trip here. gRPC chooses
when it is first imported, from the ``GRPC_EXPERIMENTS`` environment variable,
so this must run before anything imports ``grpc``.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

EXPERIMENTS_VAR = "GRPC_EXPERIMENTS"
POLLING_ENDPOINTS = "-event_engine_client,-event_engine_listener"
# Releases known to have both experiments: another release would log "Unknown
# experiment" for a name it no longer (or not yet) has.
_KNOWN_RELEASES = ((1, 60), (1, 99))


def use_polling_endpoints() -> bool:
    """Import gRPC so that it uses its polling endpoints in this process.

    Nothing changes if gRPC is already imported, if ``GRPC_EXPERIMENTS`` is set
    (the user's choice wins: set it, even empty, to opt out) or if the installed
    grpcio is outside the releases known to have these experiments. The variable
    is removed again, so processes started later (Ray's) do not inherit it.

    Returns:
        True if gRPC was imported with the polling endpoints.
    """
    if "grpc" in sys.modules or EXPERIMENTS_VAR in os.environ or not _known_release():
        return False
    os.environ[EXPERIMENTS_VAR] = POLLING_ENDPOINTS
    try:
        import grpc  # noqa: F401  (reads the variable now, once for the process)
    finally:
        del os.environ[EXPERIMENTS_VAR]
    return True


def _known_release() -> bool:
    try:
        major, minor = (int(part) for part in importlib.metadata.version("grpcio").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    low, high = _KNOWN_RELEASES
    return low <= (major, minor) <= high
