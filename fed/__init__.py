"""silofed: federated, cross-silo DAG execution on Ray (import name ``fed``).

The API is a superset of RayFed's: ``fed.init``, ``@fed.remote``, ``.party()``,
``.options()``, ``.remote()``, ``fed.get``, ``fed.kill``, ``fed.shutdown``.
"""

from fed._api import get, init, kill, shutdown, stats, timeline
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
from fed._object import FedObject
from fed._remote import FedActorHandle, FedRemoteClass, FedRemoteFunction, remote

__version__ = "0.1.0"

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
