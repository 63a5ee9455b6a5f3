"""fed certs: CA and per-party certificates bound to party names."""

from __future__ import annotations

import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fed import ConfigError
from fed._cli.certs import write_certs_for_addresses, write_party_certs
from proxy._identity import identities_of_pem, names_party, party_server_name, party_uri

CONFIG = """\
job_name: demo
parties:
  alice: {address: 127.0.0.1:11010}
  bob:   {address: bob.example.org:11011}
  carol: {address: 10.1.2.3:11012}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


def _load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(open(path, "rb").read())


def _sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_writes_ca_and_one_cert_and_key_per_party(config, tmp_path):
    out = tmp_path / "certs"
    files = write_party_certs(config, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["ca.crt", "ca.key"] + [f"{p}.{e}" for p in ("alice", "bob", "carol") for e in ("crt", "key")])
    assert files["ca_cert"] == str(out / "ca.crt")
    assert files["parties"]["bob"] == {"cert": str(out / "bob.crt"), "key": str(out / "bob.key")}


def test_key_files_are_private(config, tmp_path):
    write_party_certs(config, tmp_path / "c")
    for name in ("ca.key", "alice.key", "bob.key", "carol.key"):
        assert stat.S_IMODE((tmp_path / "c" / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((tmp_path / "c" / "alice.crt").stat().st_mode) == 0o644


def test_party_certificates_are_signed_by_the_ca_and_name_the_party(config, tmp_path):
    files = write_party_certs(config, tmp_path / "c")
    ca = _load(files["ca_cert"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for party in ("alice", "bob", "carol"):
        cert = _load(files["parties"][party]["cert"])
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == party
        sans = _sans(cert)
        assert party_uri(party) in sans.get_values_for_type(x509.UniformResourceIdentifier)
        assert party_server_name(party) in sans.get_values_for_type(x509.DNSName)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        pem = open(files["parties"][party]["cert"], "rb").read()
        assert identities_of_pem(pem) == {party} and names_party(pem)


def test_keys_match_their_certificates(config, tmp_path):
    from cryptography.hazmat.primitives import serialization
    files = write_party_certs(config, tmp_path / "c")
    for party, f in files["parties"].items():
        key = serialization.load_pem_private_key(open(f["key"], "rb").read(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.public_key().public_numbers() == _load(f["cert"]).public_key().public_numbers()


def test_sans_cover_the_host_of_each_address(config, tmp_path):
    files = write_party_certs(config, tmp_path / "c")
    alice = _sans(_load(files["parties"]["alice"]["cert"]))
    assert {str(i) for i in alice.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert "localhost" in alice.get_values_for_type(x509.DNSName)
    bob = _sans(_load(files["parties"]["bob"]["cert"]))
    assert "bob.example.org" in bob.get_values_for_type(x509.DNSName)
    assert "localhost" not in bob.get_values_for_type(x509.DNSName)
    assert bob.get_values_for_type(x509.IPAddress) == []
    carol = _sans(_load(files["parties"]["carol"]["cert"]))
    assert carol.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]


def test_refuses_to_overwrite_without_force(config, tmp_path):
    out = tmp_path / "c"
    first = write_party_certs(config, out)
    before = open(first["parties"]["alice"]["key"], "rb").read()
    with pytest.raises(ConfigError, match="already exist.*--force"):
        write_party_certs(config, out)
    assert open(first["parties"]["alice"]["key"], "rb").read() == before
    write_party_certs(config, out, force=True)
    assert open(first["parties"]["alice"]["key"], "rb").read() != before


def test_invalid_config_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("parties: {alice: {address: nowhere}}\n")
    with pytest.raises(ConfigError, match="host:port"):
        write_party_certs(bad, tmp_path / "c")
    with pytest.raises(ConfigError, match="cannot read"):
        write_party_certs(tmp_path / "missing.yaml", tmp_path / "c")


def test_party_names_that_are_not_dns_labels_get_a_stable_server_name(tmp_path):
    files = write_certs_for_addresses({"Org A": "0.0.0.0:1", "b_2": "[::1]:2"}, tmp_path)
    for party in ("Org A", "b_2"):
        name = party_server_name(party)
        assert name.endswith(".party.silofed.invalid") and name == party_server_name(party)
        pem = open(files["parties"][party]["cert"], "rb").read()
        assert identities_of_pem(pem) == {party}
    assert party_server_name("Org A") != party_server_name("org a")


def test_bad_party_names_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot name a certificate file"):
        write_certs_for_addresses({"../x": "127.0.0.1:1"}, tmp_path)
