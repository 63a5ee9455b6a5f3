"""``fed check``: is a party ready to join its job?

Validates the config, checks that the party can bind its listen address, and
tries to reach every peer (a TCP connect, plus a full mutual-TLS handshake with
the configured files when ``tls`` is set). Touches no Ray and no gRPC.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from dataclasses import dataclass
from typing import IO, Optional

from fed._config import JobConfig, parse_address
from fed._errors import ConfigError

DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class CheckResult:
    """One line of the report.

    Attributes:
        party: the party checked (or ``"-"`` for job-wide checks).
        address: what was checked.
        ok: whether the check passed.
        detail: what passed, or why it failed and what to do.
    """

    party: str
    address: str
    ok: bool
    detail: str


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host name ({exc.strerror})"
    return exc.strerror or str(exc)


def check_listen(cfg: JobConfig) -> CheckResult:
    """Whether this party can bind its listen address (nothing else holds the port)."""
    host, port = parse_address(cfg.listen_address, f"parties.{cfg.party}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return CheckResult(cfg.party, cfg.listen_address, False, f"listen address: {_os_reason(exc)}")
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "port already in use: stop the process holding it or pick another port"
            elif exc.errno == errno.EADDRNOTAVAIL:
                why = (f"{host} is not an address of this host: set parties.{cfg.party}.listen_address "
                       f"(e.g. 0.0.0.0:{port})")
            else:
                why = _os_reason(exc)
            return CheckResult(cfg.party, cfg.listen_address, False, f"cannot listen: {why}")
    return CheckResult(cfg.party, cfg.listen_address, True, "OK (this party; listen port free)")


def _client_context(cfg: JobConfig) -> ssl.SSLContext:
    assert cfg.tls is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=cfg.tls.ca_cert)
    ctx.load_cert_chain(certfile=cfg.tls.cert, keyfile=cfg.tls.key)
    ctx.set_alpn_protocols(["h2"])  # what a gRPC client offers
    return ctx


def check_tls_files(cfg: JobConfig) -> Optional[CheckResult]:
    """Whether the configured TLS files exist and load (None when TLS is off)."""
    if cfg.tls is None:
        return None
    files = f"ca_cert={cfg.tls.ca_cert}, cert={cfg.tls.cert}, key={cfg.tls.key}"
    for what in ("ca_cert", "cert", "key"):
        path = getattr(cfg.tls, what)
        if not os.path.isfile(path):
            return CheckResult(cfg.party, "tls", False, f"tls.{what}: file {path!r} does not exist; create "
                               "certificates with `fed certs --config CONFIG --out DIR`")
    try:
        _client_context(cfg)
    except (ssl.SSLError, OSError) as exc:
        return CheckResult(cfg.party, "tls", False, f"cannot load TLS files ({files}): {exc}")
    return CheckResult(cfg.party, "tls", True, f"OK (files load: {files})")


def check_peer(cfg: JobConfig, peer: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> CheckResult:
    """Whether ``peer`` answers at its address: TCP connect, then a TLS handshake if configured."""
    address = cfg.addresses[peer]
    host, port = parse_address(address, f"parties.{peer}.address")
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        return CheckResult(peer, address, False, f"cannot connect: {_os_reason(exc)} (is party {peer} running "
                           "and its address right?)")
    with sock:
        if cfg.tls is None:
            return CheckResult(peer, address, True, "OK (TCP connect)")
        try:
            ctx = _client_context(cfg)
        except (ssl.SSLError, OSError) as exc:
            return CheckResult(peer, address, False, f"TCP OK, cannot load own TLS files: {exc}")
        try:
            with ctx.wrap_socket(sock, server_hostname=host) as tls_sock:
                version = tls_sock.version()
        except ssl.SSLCertVerificationError as exc:
            return CheckResult(peer, address, False, f"TCP OK, TLS: peer certificate rejected: "
                               f"{exc.verify_message} (is it signed by {cfg.tls.ca_cert} and issued for {host}?)")
        except (ssl.SSLError, OSError) as exc:
            return CheckResult(peer, address, False, f"TCP OK, TLS handshake failed: {exc} (does {peer} "
                               "use TLS with the same CA?)")
        return CheckResult(peer, address, True, f"OK (TCP connect, mutual TLS handshake, {version})")


def run_checks(cfg: JobConfig, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[CheckResult]:
    """Every check for this party, in report order: TLS files, own listen port, each peer."""
    results = []
    tls = check_tls_files(cfg)
    if tls is not None:
        results.append(tls)
    results.append(check_listen(cfg))
    for peer in cfg.addresses:
        if peer != cfg.party:
            results.append(check_peer(cfg, peer, timeout_s))
    return results


def config_failure(source: str, error: ConfigError) -> CheckResult:
    """The report line for a config that does not validate."""
    return CheckResult("-", source, False, "invalid config: " + "; ".join(
        line.strip() for line in str(error).splitlines() if line.strip()))


def print_table(results: list[CheckResult], out: IO[str]) -> None:
    """Write ``results`` as an aligned table: PARTY, ADDRESS, STATUS."""
    rows = [("PARTY", "ADDRESS", "STATUS")] + [
        (r.party, r.address, r.detail if r.ok or r.detail.startswith("FAIL") else f"FAIL: {r.detail}")
        for r in results]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for party, address, status in rows:
        out.write(f"{party.ljust(w0)}  {address.ljust(w1)}  {status}\n")
