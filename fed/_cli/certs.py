"""Certificates for mutual TLS between parties (``fed certs``).

One run creates a certificate authority and, for every party, a key and a
certificate that names the party (REP 0020):

* subject ``CN=<party>``;
* SAN ``URI:silofed://party/<party>`` (percent-encoded): the identity the
  receiver checks against the ``src`` of every message;
* SAN ``DNS:<label>.party.silofed.invalid``: the name a client verifies when
  it dials that party (see :func:`proxy._identity.party_server_name`);
* SANs for the host of the party's address (``IP:`` or ``DNS:``), plus
  ``localhost``, ``127.0.0.1`` and ``::1`` when the host is a loopback or
  wildcard address, so tools that verify the hostname also work.

Keys are ECDSA P-256 and written with mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Mapping, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fed._config import load_file_config, parse_address
from fed._errors import ConfigError
from proxy import party_server_name, party_uri

_LOOPBACK_NAMES = {"localhost", "0.0.0.0", "::"}
DEFAULT_VALID_DAYS = 825


def _is_loopback_or_any(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _host_names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and not ip.is_unspecified:
        names.append(x509.IPAddress(ip))
    elif ip is None and host.lower() != "localhost":
        names.append(x509.DNSName(host.lower()))
    if _is_loopback_or_any(host):
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                  x509.IPAddress(ipaddress.ip_address("::1"))]
    out: list[x509.GeneralName] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)


def _make_ca(name: str, days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "silofed")])
    start, end = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_party_cert(party: str, host: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                     days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(party_uri(party)),
        x509.DNSName(party_server_name(party)),
        *_host_names(host),
    ]
    start, end = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, party)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, private: bool) -> None:
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # O_CREAT's mode does not apply to an existing file


def write_certs_for_addresses(
    addresses: Mapping[str, str],
    out_dir: Union[str, os.PathLike],
    force: bool = False,
    *,
    ca_name: str = "silofed CA",
    valid_days: int = DEFAULT_VALID_DAYS,
) -> dict:
    """Create a CA and a key and certificate for every party.

    Args:
        addresses: ``{party: "host:port"}``.
        out_dir: directory for ``ca.crt``, ``ca.key``, ``<party>.crt`` and
            ``<party>.key``; created if missing.
        force: overwrite files that exist already.
        ca_name: common name of the CA (e.g. the organisation's name).
        valid_days: validity of every certificate.

    Returns:
        ``{"ca_cert": path, "ca_key": path, "parties": {party: {"cert": path, "key": path}}}``
        with paths as strings.

    Raises:
        ConfigError: an address is malformed, a party name is empty or
            contains ``/``, or a file exists and ``force`` is false.
    """
    if not addresses:
        raise ConfigError("fed certs: the config has no parties")
    hosts = {}
    for party, address in addresses.items():
        if not isinstance(party, str) or not party or "/" in party or party in ("ca",):
            raise ConfigError(f"fed certs: party name {party!r} cannot name a certificate file; "
                              "use a non-empty name without '/' other than 'ca'")
        hosts[party] = parse_address(address, f"parties.{party}.address")[0]
    out = Path(out_dir)
    files = {"ca_cert": out / "ca.crt", "ca_key": out / "ca.key"}
    party_files = {p: {"cert": out / f"{p}.crt", "key": out / f"{p}.key"} for p in addresses}
    all_paths = list(files.values()) + [f for pf in party_files.values() for f in pf.values()]
    existing = [str(p) for p in all_paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"fed certs: {', '.join(existing)} already exist; refusing to overwrite keys. "
                          "Pass --force (force=True) to replace them, or choose another --out directory.")
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca(ca_name, valid_days)
    _write(files["ca_key"], _key_pem(ca_key), private=True)
    _write(files["ca_cert"], _cert_pem(ca_cert), private=False)
    for party, host in hosts.items():
        key, cert = _make_party_cert(party, host, ca_key, ca_cert, valid_days)
        _write(party_files[party]["key"], _key_pem(key), private=True)
        _write(party_files[party]["cert"], _cert_pem(cert), private=False)
    return {
        "ca_cert": str(files["ca_cert"]),
        "ca_key": str(files["ca_key"]),
        "parties": {p: {k: str(v) for k, v in pf.items()} for p, pf in party_files.items()},
    }


def write_party_certs(config_path: Union[str, os.PathLike], out_dir: Union[str, os.PathLike],
                      force: bool = False) -> dict:
    """Create a CA and per-party certificates for the parties of a YAML config.

    This is ``fed certs --config CONFIG --out DIR [--force]``.

    Args:
        config_path: the job's YAML config (its ``parties`` section is used).
        out_dir: where to write the files (see :func:`write_certs_for_addresses`).
        force: overwrite existing files.

    Returns:
        the paths written, as :func:`write_certs_for_addresses` returns them.

    Raises:
        ConfigError: the config is invalid, or files exist and ``force`` is false.
    """
    cfg = load_file_config(config_path)
    return write_certs_for_addresses({p: c.address for p, c in cfg.parties.items()}, out_dir, force)
