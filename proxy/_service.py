"""gRPC glue for the Transport service, written by hand.

Generated ``*_pb2_grpc`` modules pin a minimum grpcio version; the two methods
here need nothing beyond the stable generic-handler API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable, Optional

import grpc

from proxy import _wire_pb2 as wire
from proxy._config import TlsFiles
from proxy._identity import names_party, party_server_name

SERVICE = "silofed.wire.Transport"
PUSH = f"/{SERVICE}/Push"
PUSH_STREAM = f"/{SERVICE}/PushStream"
PING = f"/{SERVICE}/Ping"
PROTOCOL_VERSION = 3
# Payloads up to this size (and the chunk size) go as one Small message on
# the long-lived PushStream (reps/0070): no call to set up per object. Small
# enough that messages held by a full receiver stay bounded (reps/0030).
SMALL_PAYLOAD_BYTES = 64 << 10
# Trailing-metadata key naming why a receiver rejected a call (e.g. "wrong_job").
REASON_KEY = "silofed-reason"
# Initial metadata a receiver sends once it admitted a Push: the sender streams the chunks after it.
ADMITTED = (("silofed-admitted", "1"),)

# Reconnect quickly once a peer that was not up yet starts listening.
_RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 250),
)


# A payload chunk is by far the most common frame; it is encoded and decoded
# here without protobuf objects so the bytes are copied once on each side.
# The encoding is exactly protobuf's for ``Frame{chunk: ...}``: field 2,
# wire type 2 (tag 0x12), a varint length, the bytes.
_CHUNK_TAG = 0x12


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_chunk(view: memoryview) -> bytes:
    """The serialized ``Frame`` carrying ``view`` as its chunk (one copy)."""
    return b"".join((bytes((_CHUNK_TAG,)), _varint(len(view)), view))


def serialize_frame(frame: bytes | wire.Frame) -> bytes:
    """Request serializer for Push: bytes from ``encode_chunk`` pass through."""
    if isinstance(frame, bytes):
        return frame
    return frame.SerializeToString()


def parse_frame(raw: bytes) -> memoryview | wire.Frame:
    """Request deserializer for Push.

    Returns:
        a read-only memoryview of the chunk for a frame that is exactly one
        chunk field (no copy), else ``wire.Frame.FromString(raw)`` -- so any
        other input, valid or not, is handled exactly as protobuf would.

    Raises:
        google.protobuf.message.DecodeError: the frame does not decode.
    """
    if raw[:1] == b"\x12":
        length, shift, pos = 0, 0, 1
        while pos < len(raw) and shift <= 63:
            byte = raw[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if pos + length == len(raw):
                    return memoryview(raw)[pos:]
                break
            shift += 7
    return wire.Frame.FromString(raw)


def keepalive_options(interval_s: float, timeout_s: float) -> tuple:
    """Channel options that fail calls on a connection gone silent (e.g. a cut link).

    Without them a push on a connection whose packets are dropped waits for
    TCP to give up (many minutes). With them gRPC pings the peer every
    ``interval_s`` and fails the calls with UNAVAILABLE after ``timeout_s``
    without an answer; the sender then retries until its connect timeout.
    """
    return (
        ("grpc.keepalive_time_ms", max(100, int(interval_s * 1000))),
        ("grpc.keepalive_timeout_ms", max(100, int(timeout_s * 1000))),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
    )


# A receiver accepts the senders' keepalive pings however often they come.
SERVER_KEEPALIVE_OPTIONS = (
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 100),
    ("grpc.http2.max_ping_strikes", 0),
)


def message_options(chunk_bytes: int) -> tuple:
    """Channel/server options that admit one frame of ``chunk_bytes``."""
    limit = chunk_bytes + (64 << 10)
    return (
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
    )


def add_transport_service(
    server: grpc.aio.Server,
    push: Callable[..., Awaitable[wire.Ack]],
    push_stream: Callable[..., Awaitable[None]],
    ping: Callable[..., Awaitable[wire.PingReply]],
) -> None:
    """Register ``push(request_iterator, context)``, ``push_stream(request_iterator, context)``
    and ``ping(request, context)``. PushStream messages reach the handler undecoded
    so that a malformed one is refused like a malformed frame."""
    handlers: dict[str, grpc.RpcMethodHandler] = {
        "Push": grpc.stream_unary_rpc_method_handler(
            push,
            request_deserializer=parse_frame,
            response_serializer=wire.Ack.SerializeToString,
        ),
        "PushStream": grpc.stream_stream_rpc_method_handler(
            push_stream,
            response_serializer=wire.Ack.SerializeToString,
        ),
        "Ping": grpc.unary_unary_rpc_method_handler(
            ping,
            request_deserializer=wire.PingRequest.FromString,
            response_serializer=wire.PingReply.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """mTLS server credentials that require a client certificate."""
    return grpc.ssl_server_credentials(
        [(_read(tls.key), _read(tls.cert))],
        root_certificates=_read(tls.ca_cert),
        require_client_auth=True,
    )


def open_channel(
    address: str, tls: Optional[TlsFiles], options: tuple, party: Optional[str] = None
) -> grpc.aio.Channel:
    """An asyncio channel to ``address``, with mTLS when ``tls`` is given.

    With TLS and ``party`` given, and this party's own certificate naming a
    party (as ``fed certs`` makes them), the server must prove it is ``party``:
    its certificate must carry ``party_server_name(party)`` (REP 0020).
    Otherwise gRPC checks the host of ``address`` against the server's SANs.
    If ``tls.peer_ca`` pins a CA for ``party``, only that CA is trusted.
    """
    opts = tuple(options) + _RECONNECT_OPTIONS
    if tls is None:
        return grpc.aio.insecure_channel(address, options=opts)
    cert = _read(tls.cert)
    if party is not None and names_party(cert):
        opts += (("grpc.ssl_target_name_override", party_server_name(party)),)
    pinned = tls.peer_ca.get(party) if party is not None else None
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(pinned or tls.ca_cert),
        private_key=_read(tls.key),
        certificate_chain=cert,
    )
    return grpc.aio.secure_channel(address, creds, options=opts)
