"""Config validation: every mistake gets a ConfigError naming the key and the fix."""

from __future__ import annotations

import pytest

import fed
from fed._config import load_job_config

GOOD = """
job_name: demo
parties:
  alice: {address: "127.0.0.1:11010"}
  bob:   {address: "127.0.0.1:11011", listen_address: "0.0.0.0:11011"}
cross_silo_comm:
  timeout_ms: 5000
  expose_error_trace: true
"""


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_yaml_config_resolves_party_job_and_listen_address(tmp_path):
    cfg = load_job_config(party="bob", config=write(tmp_path, GOOD))
    assert cfg.job_name == "demo"
    assert cfg.addresses == {"alice": "127.0.0.1:11010", "bob": "127.0.0.1:11011"}
    assert cfg.listen_address == "0.0.0.0:11011"
    assert cfg.comm.timeout_ms == 5000 and cfg.comm.expose_error_trace


def test_party_comes_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FED_PARTY", "alice")
    assert load_job_config(party=None, config=write(tmp_path, GOOD)).party == "alice"


def test_rayfed_dict_config_and_addresses():
    cfg = load_job_config(
        party="alice",
        addresses={"alice": "127.0.0.1:1", "bob": "localhost:2"},
        config={"cross_silo_comm": {"timeout_in_ms": 1234, "exit_on_sending_failure": True},
                "barrier_on_initializing": True},
    )
    assert cfg.comm.timeout_ms == 1234
    assert cfg.comm.exit_on_sending_failure and cfg.barrier_on_initializing
    assert cfg.job_name == "default"


@pytest.mark.parametrize(
    "text, fragment",
    [
        (GOOD.replace("timeout_ms", "timout_ms"), "unknown key 'cross_silo_comm.timout_ms'"),
        (GOOD + "extra: 1\n", "unknown key 'extra'"),
        (GOOD.replace('"127.0.0.1:11010"', '"127.0.0.1"'), "not of the form host:port"),
        (GOOD.replace('"127.0.0.1:11010"', '"127.0.0.1:99999"'), "port between 1 and 65535"),
        (GOOD.replace("11011", "11010"), "both use 127.0.0.1:11010"),
        (GOOD.replace("timeout_ms: 5000", "timeout_ms: -1"), "cross_silo_comm.timeout_ms"),
        (GOOD.replace("expose_error_trace: true", "expose_error_trace: maybe"), "expose_error_trace"),
        ("parties: {}\n", "at least one party"),
        ("job_name: x\n", "missing required key 'parties'"),
        ("- a\n- b\n", "must hold a mapping"),
        ("parties: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_yaml_config_is_a_clear_config_error(tmp_path, text, fragment):
    with pytest.raises(fed.ConfigError) as info:
        load_job_config(party="alice", config=write(tmp_path, text))
    assert fragment in str(info.value)


def test_party_not_in_config(tmp_path):
    with pytest.raises(fed.UnknownPartyError) as info:
        load_job_config(party="mallory", config=write(tmp_path, GOOD))
    assert "'mallory'" in str(info.value) and "['alice', 'bob']" in str(info.value)


def test_missing_party_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.delenv("FED_PARTY", raising=False)
    with pytest.raises(fed.ConfigError, match="FED_PARTY"):
        load_job_config(party=None, config=write(tmp_path, GOOD))
    with pytest.raises(fed.ConfigError, match="cannot read config file"):
        load_job_config(party="alice", config=tmp_path / "nope.yaml")


def test_addresses_errors():
    with pytest.raises(fed.ConfigError, match="no parties given"):
        load_job_config(party="alice")
    with pytest.raises(fed.ConfigError, match="both use"):
        load_job_config(party="alice", addresses={"alice": "127.0.0.1:5", "bob": "127.0.0.1:5"})
    with pytest.raises(fed.ConfigError, match="unknown key 'cross_silo_comm.bogus'"):
        load_job_config(party="alice", addresses={"alice": "h:1"}, config={"cross_silo_comm": {"bogus": 1}})


def test_tls_paths_take_the_party_name(tmp_path):
    text = GOOD + "tls: {ca_cert: c/ca.crt, cert: 'c/{party}.crt', key: 'c/{party}.key'}\n"
    cfg = load_job_config(party="bob", config=write(tmp_path, text))
    assert (cfg.tls.cert, cfg.tls.key, cfg.tls.ca_cert) == ("c/bob.crt", "c/bob.key", "c/ca.crt")
