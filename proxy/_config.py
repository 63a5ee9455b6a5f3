"""Plain configuration objects handed to the transport by ``fed``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files for mutual TLS.

    Attributes:
        ca_cert: CA bundle used to verify peers.
        cert: this party's certificate.
        key: this party's private key.
        peer_ca: ``{party: CA file}``; a party listed here is only believed
            when its certificate was issued by that CA (REP 0020).
    """

    ca_cert: str
    cert: str
    key: str
    peer_ca: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TransportConfig:
    """Everything one party's proxies need to talk to the others.

    Attributes:
        job: job name; messages for another job are refused.
        party: this party's name.
        listen_address: ``host:port`` the receiver binds.
        peers: ``{party: "host:port"}`` of every other party.
        chunk_bytes: payload bytes per stream frame.
        max_message_bytes: largest object accepted or sent.
        connect_timeout_s: how long a send retries while a peer is unreachable.
        unsolicited_budget_bytes: bytes of not-yet-requested data buffered.
        reuse_buffer_bytes: bytes of large-payload buffers kept mapped for
            reuse once their values are gone (proxy._buffers); 0: none.
        tls: mutual TLS files, or None for plaintext.
        allowed_globals: ``{module: [names]}`` that received pickles may
            reference, or None to allow everything (trusted peers).
        grpc_options: extra gRPC channel/server options.
        peer_timeout_s: a peer that answered pings before and has not for
            this long is declared unreachable.
        ping_interval_s: how often each peer is pinged.
        metrics_interval_s: how often the proxies export their figures as
            Ray metrics; 0 disables the export.
    """

    job: str
    party: str
    listen_address: str
    peers: Mapping[str, str]
    chunk_bytes: int = 1 << 20
    max_message_bytes: int = 8 << 30
    connect_timeout_s: float = 60.0
    unsolicited_budget_bytes: int = 1 << 30
    reuse_buffer_bytes: int = 2 << 30
    tls: Optional[TlsFiles] = None
    allowed_globals: Optional[Mapping[str, tuple]] = None
    grpc_options: tuple = field(default_factory=tuple)
    peer_timeout_s: float = 10.0
    ping_interval_s: float = 1.0
    metrics_interval_s: float = 5.0
