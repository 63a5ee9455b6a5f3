"""Cross-silo transport for silofed.

This package moves serialized objects between parties over gRPC. It knows
nothing of the programming model in ``fed``: configuration arrives as the plain
dataclasses defined here, and failures are reported with the exception types
of :mod:`proxy.errors`, which ``fed`` translates at its boundary.
"""

from proxy import _grpc_endpoints

_grpc_endpoints.use_polling_endpoints()  # before the first import of grpc

from proxy._allowlist import build_allowed, parse_entries  # noqa: E402
from proxy._config import TlsFiles, TransportConfig  # noqa: E402
from proxy._identity import party_server_name, party_uri  # noqa: E402
from proxy._receiver import PendingReceive, ReceiverProxy  # noqa: E402
from proxy._sender import SenderProxy  # noqa: E402
from proxy._serialization import dumps  # noqa: E402
from proxy._stats import EventLog  # noqa: E402
from proxy.errors import (  # noqa: E402
    DivergedProducerError,
    PeerFailure,
    RemoteFailure,
    TransportError,
    UnpicklingRefusedError,
    iter_causes,
)

__all__ = [
    "DivergedProducerError",
    "EventLog",
    "PeerFailure",
    "PendingReceive",
    "ReceiverProxy",
    "RemoteFailure",
    "SenderProxy",
    "TlsFiles",
    "TransportConfig",
    "TransportError",
    "UnpicklingRefusedError",
    "build_allowed",
    "dumps",
    "iter_causes",
    "parse_entries",
    "party_server_name",
    "party_uri",
]
