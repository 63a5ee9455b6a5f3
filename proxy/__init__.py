"""Cross-silo transport for silofed.

This package moves serialized objects between parties over gRPC. It knows
nothing of the programming model in ``fed``: configuration arrives as the plain
dataclasses defined here, and failures are reported with the exception types
of :mod:`proxy.errors`, which ``fed`` translates at its boundary.
"""

from proxy._config import TlsFiles, TransportConfig
from proxy._receiver import PendingReceive, ReceiverProxy
from proxy._sender import SenderProxy
from proxy._serialization import dumps
from proxy.errors import (
    DivergedProducerError,
    PeerFailure,
    RemoteFailure,
    TransportError,
    UnpicklingRefusedError,
)

__all__ = [
    "DivergedProducerError",
    "PeerFailure",
    "PendingReceive",
    "ReceiverProxy",
    "RemoteFailure",
    "SenderProxy",
    "TlsFiles",
    "TransportConfig",
    "TransportError",
    "UnpicklingRefusedError",
    "dumps",
]
