"""The ``tls`` config section: {party} substitution, CA pinning, missing files."""

from __future__ import annotations

import pytest

from fed import ConfigError
from fed._api import _transport_config
from fed._cli.certs import write_party_certs
from fed._config import load_job_config

CONFIG = """\
job_name: demo
parties:
  alice: {address: 127.0.0.1:11010}
  bob:   {address: 127.0.0.1:11011}
tls:
  ca_cert: CERTS/ca.crt
  cert: CERTS/{party}.crt
  key: CERTS/{party}.key
  peer_ca_certs: {bob: CERTS/ca.crt}
"""


def test_three_step_setup_resolves_to_existing_files(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("CERTS", str(tmp_path / "certs")))
    write_party_certs(path, tmp_path / "certs")
    cfg = load_job_config(party="bob", config=str(path))
    assert cfg.tls.cert == str(tmp_path / "certs" / "bob.crt")
    tls = _transport_config(cfg).tls
    assert tls.key.endswith("bob.key") and tls.peer_ca == {"bob": str(tmp_path / "certs" / "ca.crt")}


def test_missing_files_name_the_key_and_the_fix(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("CERTS", str(tmp_path / "nowhere")))
    cfg = load_job_config(party="alice", config=str(path))
    with pytest.raises(ConfigError, match=r"tls\.ca_cert.*fed certs"):
        _transport_config(cfg)


def test_rayfed_tls_config_form(tmp_path):
    cfg = load_job_config(party="alice", addresses={"alice": "127.0.0.1:1", "bob": "127.0.0.1:2"},
                          tls_config={"ca_cert": "c/ca.crt", "cert": "c/{party}.crt", "key": "c/{party}.key"})
    assert (cfg.tls.cert, cfg.tls.key, cfg.tls.peer_ca_certs) == ("c/alice.crt", "c/alice.key", None)
    with pytest.raises(ConfigError, match="unknown key"):
        load_job_config(party="alice", addresses={"alice": "127.0.0.1:1"},
                        tls_config={"ca_cert": "a", "cert": "b", "key": "c", "verify": False})
