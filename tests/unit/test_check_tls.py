"""``fed check`` completes a mutual-TLS handshake with each peer using the configured files."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fed._cli.check import run_checks
from fed._config import load_job_config
from tests.support import free_ports, write_config


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, ca=False, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(out: Path, ca_name: str, parties) -> None:
    """A CA ``out/ca.crt`` and ``out/{party}.crt/.key`` for 127.0.0.1, like `fed certs` makes."""
    out.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    (out / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for party in parties:
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(party), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = _cert(party, key, ca_name, ca_key, sans=sans)
        (out / f"{party}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (out / f"{party}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


class TlsPeer:
    """A TLS server that requires a client certificate, handshakes, and closes."""

    def __init__(self, port: int, certs: Path, party: str):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certs / f"{party}.crt", certs / f"{party}.key")
        self.ctx.load_verify_locations(certs / "ca.crt")
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(10)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # until the client closes
            except (ssl.SSLError, OSError):
                pass

    def close(self):
        self.sock.close()
        self.thread.join(timeout=10)


@pytest.fixture
def tls_setup(tmp_path):
    alice, bob = free_ports(2)
    certs = tmp_path / "certs"
    make_pki(certs, "test-ca", ["alice", "bob"])
    make_pki(tmp_path / "other", "other-ca", ["bob"])
    tls = f"tls: {{ca_cert: '{certs}/ca.crt', cert: '{certs}/{{party}}.crt', key: '{certs}/{{party}}.key'}}\n"
    cfg = write_config(tmp_path / "c.yaml", {"alice": alice, "bob": bob}, tls)
    return load_job_config(party="alice", config=str(cfg)), bob, tmp_path


def _check_against_bob(tls_setup, cert_dir: str):
    """Run the checks against a TLS bob serving the certificate from ``cert_dir``."""
    cfg, bob_port, tmp = tls_setup
    peer = TlsPeer(bob_port, tmp / cert_dir, "bob")
    try:
        return run_checks(cfg, timeout_s=5)
    finally:
        peer.close()


def test_check_completes_a_mutual_tls_handshake(tls_setup):
    results = _check_against_bob(tls_setup, "certs")
    assert [r.ok for r in results] == [True, True, True], results
    assert "mutual TLS handshake" in results[2].detail


def test_check_rejects_a_peer_with_a_certificate_of_another_ca(tls_setup):
    results = _check_against_bob(tls_setup, "other")
    bob = results[2]
    assert not bob.ok and "peer certificate rejected" in bob.detail, bob


def test_check_reports_a_plain_tcp_peer_when_tls_is_configured(tls_setup):
    cfg, bob_port, _ = tls_setup
    with socket.create_server(("127.0.0.1", bob_port)) as srv:
        srv.settimeout(5)

        def accept_and_close():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                pass

        t = threading.Thread(target=accept_and_close, daemon=True)
        t.start()
        results = run_checks(cfg, timeout_s=5)
        t.join(timeout=10)
    assert not results[2].ok and "TLS handshake failed" in results[2].detail


def test_check_handshakes_with_a_grpc_server_using_the_proxy_credentials(tls_setup):
    """The same server credentials as the receiver proxy: ALPN and client-certificate checks pass."""
    from concurrent import futures

    import grpc

    from proxy._config import TlsFiles
    from proxy._service import server_credentials

    cfg, bob_port, tmp = tls_setup
    certs = tmp / "certs"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    creds = server_credentials(TlsFiles(ca_cert=str(certs / "ca.crt"), cert=str(certs / "bob.crt"),
                                        key=str(certs / "bob.key")))
    assert server.add_secure_port(f"127.0.0.1:{bob_port}", creds) == bob_port
    server.start()
    try:
        results = run_checks(cfg, timeout_s=5)
    finally:
        server.stop(grace=None)
    assert results[2].ok, results[2]
