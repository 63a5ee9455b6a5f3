"""silofed: federated, cross-silo DAG execution on Ray (import name ``fed``).

The API is a superset of RayFed's: ``fed.init``, ``@fed.remote``, ``.party()``,
``.options()``, ``.remote()``, ``fed.get``, ``fed.kill``, ``fed.shutdown``.

``import fed`` imports the transport first (so that gRPC starts with its
polling endpoints, REP 0110) and the errors; the rest of the API, which needs
Ray, is imported when first used, so that the ``fed`` command line starts
without Ray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import proxy  # noqa: F401  (before anything imports grpc: REP 0110)
from fed._errors import (
    ConfigError,
    FedError,
    FedTimeoutError,
    FedTransportError,
    InterruptedJobError,
    NotInitializedError,
    PeerUnavailableError,
    ProgramDivergenceError,
    RemoteError,
    UnknownPartyError,
    UntrustedPayloadError,
    UsageError,
)

if TYPE_CHECKING:
    from fed._api import get, init, kill, shutdown, stats, timeline
    from fed._object import FedObject
    from fed._remote import FedActorHandle, FedRemoteClass, FedRemoteFunction, remote

__version__ = "0.1.0"

_LAZY = {
    "get": "fed._api", "init": "fed._api", "kill": "fed._api", "shutdown": "fed._api", "stats": "fed._api",
    "timeline": "fed._api", "FedObject": "fed._object", "FedActorHandle": "fed._remote",
    "FedRemoteClass": "fed._remote", "FedRemoteFunction": "fed._remote", "remote": "fed._remote",
}


def __getattr__(name: str) -> Any:
    """Import the Ray-dependent part of the API on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fed' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ConfigError",
    "FedActorHandle",
    "FedError",
    "FedObject",
    "FedRemoteClass",
    "FedRemoteFunction",
    "FedTimeoutError",
    "FedTransportError",
    "InterruptedJobError",
    "NotInitializedError",
    "PeerUnavailableError",
    "ProgramDivergenceError",
    "RemoteError",
    "UnknownPartyError",
    "UntrustedPayloadError",
    "UsageError",
    "get",
    "init",
    "kill",
    "remote",
    "shutdown",
    "stats",
    "timeline",
]
