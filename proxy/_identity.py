"""Which party a TLS certificate speaks for (REP 0020).

A certificate names a party by a SAN ``URI:silofed://party/<name>`` (the name
percent-encoded); a certificate without such a URI names the party in its
subject common name. The receiver compares that identity with the ``src`` a
message claims; the sender dials a party expecting the server certificate to
carry ``DNS:<label>.party.silofed.invalid``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import urllib.parse
from typing import Iterable, Mapping, Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

URI_PREFIX = "silofed://party/"
_DNS_SUFFIX = ".party.silofed.invalid"
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def party_uri(party: str) -> str:
    """The SAN URI that names ``party``."""
    return URI_PREFIX + urllib.parse.quote(party, safe="")


def party_server_name(party: str) -> str:
    """The DNS name a client expects in the certificate of ``party``'s server.

    Party names that are valid lower-case DNS labels are used as they are;
    any other name becomes ``x`` followed by 32 hex digits of its SHA-256.
    """
    label = party if _LABEL.fullmatch(party) else "x" + hashlib.sha256(party.encode()).hexdigest()[:32]
    return label + _DNS_SUFFIX


@functools.lru_cache(maxsize=64)
def identities_of_pem(pem: bytes) -> frozenset[str]:
    """The parties a PEM certificate names: its silofed URIs, else its CN."""
    cert = x509.load_pem_x509_certificate(pem)
    parties = set()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
            if uri.startswith(URI_PREFIX):
                parties.add(urllib.parse.unquote(uri[len(URI_PREFIX):]))
    if not parties:
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            parties.add(str(attr.value))
    return frozenset(parties)


def names_party(pem: bytes) -> bool:
    """True if the certificate carries a silofed party URI (made by ``fed certs`` or alike)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    return any(u.startswith(URI_PREFIX) for u in san.get_values_for_type(x509.UniformResourceIdentifier))


@functools.lru_cache(maxsize=64)
def _issued_by(pem: bytes, ca_path: str, ca_mtime: float) -> bool:
    cert = x509.load_pem_x509_certificate(pem)
    with open(ca_path, "rb") as f:
        bundle = f.read()
    for ca in x509.load_pem_x509_certificates(bundle):
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def identity_mismatch(
    auth_context: Mapping[str, Iterable[bytes]], claimed: str, pinned_ca: Optional[str] = None
) -> Optional[str]:
    """Why a TLS peer may not speak for party ``claimed``, or None if it may.

    Args:
        auth_context: ``ServicerContext.auth_context()`` of the call.
        claimed: the party named in the message (``src``).
        pinned_ca: path of the only CA(s) allowed to certify ``claimed``, if pinned.
    """
    pems = list(auth_context.get("x509_pem_cert") or [])
    if not pems:
        return (f"the message claims to come from party {claimed!r} but the TLS client presented no "
                "certificate; every party must use mutual TLS (tls.cert and tls.key)")
    pem = bytes(pems[0])
    try:
        names = identities_of_pem(pem)
        pinned_ok = pinned_ca is None or _issued_by(pem, pinned_ca, os.stat(pinned_ca).st_mtime)
    except (ValueError, OSError) as exc:
        return f"the client certificate cannot be checked ({exc})"
    if claimed not in names:
        shown = ", ".join(repr(n) for n in sorted(names)) or "no party"
        return (f"the message claims to come from party {claimed!r} but the sender's TLS certificate identifies "
                f"{shown}; a party may only send as itself. Check that the sender uses its own tls.cert "
                f"(made by `fed certs` with CN={claimed} and SAN {party_uri(claimed)})")
    if not pinned_ok:
        return (f"the certificate presented for party {claimed!r} was not issued by the CA pinned for it in "
                f"tls.peer_ca_certs ({pinned_ca}); another organisation's CA may not certify {claimed!r}")
    return None
