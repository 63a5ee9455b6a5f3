"""Job configuration: the YAML file format, RayFed's dict form, validation.

Every key has a type, a default and a description here, in one place; unknown
keys are errors. ``load_job_config`` turns whatever the user passed to
``fed.init`` into one validated :class:`JobConfig`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from fed._errors import ConfigError, UnknownPartyError
from proxy import build_allowed, parse_entries

DEFAULT_JOB_NAME = "default"
PARTY_ENV = "FED_PARTY"
CONFIG_ENV = "FED_CONFIG"
# ``cross_silo_comm.serializing_allowed_list``: {module: [names]} or ["module:name", ...].
AllowListEntries = Optional[Union[dict[str, Union[list[str], str]], list[str]]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class CrossSiloComm(_Strict):
    """``cross_silo_comm``: how parties exchange messages."""

    timeout_ms: int = Field(
        60_000, gt=0, validation_alias=AliasChoices("timeout_ms", "timeout_in_ms"),
        description="How long a send keeps retrying a peer that is not reachable (RayFed: timeout_in_ms).")
    messages_max_size_in_bytes: int = Field(
        8 << 30, gt=0, description="Largest object this party sends or accepts.")
    chunk_size_in_bytes: int = Field(
        1 << 20, ge=4096, le=64 << 20, description="Payload bytes per stream frame.")
    unsolicited_buffer_bytes: int = Field(
        1 << 30, gt=0, description="Receiver memory for data that arrived before the program asked for it.")
    reuse_buffer_bytes: int = Field(
        2 << 30, ge=0, description="Receiver memory kept mapped, for up to 30 s, to assemble the next large "
        "payloads in once the values built on it are gone (REP 0170); 0 unmaps each buffer at once.")
    expose_error_trace: bool = Field(
        False, description="Send error messages and tracebacks to other parties (otherwise only the type).")
    exit_on_failure: bool = Field(
        False, description="Exit non-zero after any local or remote failure; "
                           "fed.shutdown waits for every peer (at most its timeout).")
    exit_on_sending_failure: bool = Field(
        False, description="RayFed's name; implies exit_on_failure.")
    continue_waiting_for_data_sending_on_error: Optional[bool] = Field(
        None, description="After a failure, still deliver pending sends at shutdown (default) or drop them (false).")
    peer_timeout_ms: int = Field(
        10_000, gt=0, description="A peer that stops answering pings for this long is declared unavailable.")
    ping_interval_ms: int = Field(1_000, gt=0, description="How often each peer is pinged.")
    recv_timeout_ms: Optional[int] = Field(
        None, gt=0, description="Default timeout of fed.get; None waits as long as the peers are alive.")
    serializing_allowed_list: AllowListEntries = Field(
        None, description="Globals received data may reference beyond the safe defaults (REP 0020): "
        "{module: [names]} or ['module:name', ...].")
    trust_peers: bool = Field(
        False, description="Unpickle anything peers send (lets them run code here); off by default.")
    send_resource_label: Optional[dict[str, float]] = Field(
        None, description="Run the sender as a Ray actor requiring these resources (e.g. pinned to a gateway "
                    "node) instead of in the driver process (the default, REP 0050).")
    recv_resource_label: Optional[dict[str, float]] = Field(
        None, description="Run the receiver as a Ray actor requiring these resources (e.g. pinned to a gateway "
                    "node) instead of in the driver process (the default, REP 0060).")
    grpc_channel_options: Optional[list[tuple[str, Union[int, str]]]] = Field(
        None, description="Extra gRPC channel options as [name, value] pairs.")
    # Accepted so that RayFed programs run unchanged; silofed has no use for them.
    proxy_max_restarts: Optional[int] = Field(None, description="RayFed compatibility; ignored.")
    http_header: Optional[dict[str, str]] = Field(None, description="RayFed compatibility; ignored.")
    max_concurrency: Optional[int] = Field(None, description="RayFed compatibility; ignored.")
    use_global_proxy: Optional[bool] = Field(None, description="RayFed compatibility; ignored.")
    grpc_retry_policy: Optional[dict[str, Any]] = Field(None, description="RayFed compatibility; ignored.")


    @field_validator("serializing_allowed_list")
    @classmethod
    def _allow_list_form(cls, v: AllowListEntries) -> AllowListEntries:
        parse_entries(v)
        return v


class TlsConfig(_Strict):
    """``tls``: mutual TLS files. ``{party}`` in a path is replaced by the party name."""

    ca_cert: str = Field(description="PEM bundle of the CA certificate(s) that sign the peers' certificates.")
    cert: str = Field(description="This party's certificate.")
    key: str = Field(description="This party's private key.")
    peer_ca_certs: Optional[dict[str, str]] = Field(
        None, description="{party: CA file}: only that CA may certify that party (pinning; see REP 0020).")


class PartyConfig(_Strict):
    """One entry of ``parties``."""

    address: str = Field(description="host:port where the other parties reach this party.")
    listen_address: Optional[str] = Field(
        None, description="host:port this party binds, if not its address (e.g. 0.0.0.0:port behind NAT).")


class FileConfig(_Strict):
    """The YAML config file (DESIGN.md section 6)."""

    job_name: str = Field(DEFAULT_JOB_NAME, min_length=1, description="Name of the job; parties must agree.")
    parties: dict[str, PartyConfig] = Field(description="Every party of the job and its address.")
    cross_silo_comm: CrossSiloComm = Field(default_factory=CrossSiloComm)
    tls: Optional[TlsConfig] = None
    barrier_on_initializing: bool = Field(
        False, description="fed.init waits until every peer answers a ping.")

    @field_validator("parties")
    @classmethod
    def _some_parties(cls, v: dict[str, PartyConfig]) -> dict[str, PartyConfig]:
        if not v:
            raise ValueError("at least one party is required")
        return v


class RayFedConfig(_Strict):
    """RayFed's ``config`` dict passed to ``fed.init``."""

    cross_silo_comm: CrossSiloComm = Field(default_factory=CrossSiloComm)
    barrier_on_initializing: bool = False


class JobConfig(_Strict):
    """Everything ``fed.init`` resolved: validated and complete."""

    party: str
    job_name: str
    addresses: dict[str, str]
    listen_address: str
    comm: CrossSiloComm
    tls: Optional[TlsConfig] = None
    barrier_on_initializing: bool = False


def _explain(err: ValidationError, source: str) -> ConfigError:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key {where!r}: remove it or check its spelling")
        elif e["type"] == "missing":
            lines.append(f"missing required key {where!r}")
        else:
            lines.append(f"{where}: {e['msg']} (got {e.get('input')!r})")
    return ConfigError(f"invalid config in {source}:\n  " + "\n  ".join(lines))


def parse_address(address: str, where: str) -> tuple[str, int]:
    """Split ``host:port``; raises ConfigError naming ``where`` if malformed."""
    if not isinstance(address, str) or ":" not in address:
        raise ConfigError(f"{where}: address {address!r} is not of the form host:port (e.g. 127.0.0.1:11010)")
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where}: address {address!r} needs a host and a port between 1 and 65535 "
                          "(e.g. 127.0.0.1:11010)")
    return host, int(port_text)


def _check_addresses(parties: Mapping[str, PartyConfig], source: str) -> None:
    seen: dict[tuple[str, int], str] = {}
    for name, p in parties.items():
        host, port = parse_address(p.address, f"{source}: parties.{name}.address")
        if p.listen_address is not None:
            parse_address(p.listen_address, f"{source}: parties.{name}.listen_address")
        if (host, port) in seen:
            raise ConfigError(f"{source}: parties {seen[(host, port)]!r} and {name!r} both use {host}:{port}; "
                              "give each party its own port")
        seen[(host, port)] = name


def _load_yaml(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping with keys job_name, parties, ...")
    return data


def load_file_config(path: Union[str, os.PathLike]) -> FileConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    data = _load_yaml(path)
    try:
        cfg = FileConfig.model_validate(data)
    except ValidationError as err:
        raise _explain(err, str(path)) from None
    _check_addresses(cfg.parties, str(path))
    return cfg


def load_job_config(
    *,
    party: Optional[str],
    addresses: Optional[Mapping[str, str]] = None,
    config: Union[None, str, os.PathLike, Mapping[str, Any]] = None,
    tls_config: Optional[Mapping[str, str]] = None,
    job_name: Optional[str] = None,
) -> JobConfig:
    """Resolve ``fed.init``'s arguments into one validated JobConfig.

    Args:
        party: this party, or None to read it from ``$FED_PARTY``.
        addresses: RayFed's ``{party: "host:port"}``; overrides the file's parties.
        config: path of a YAML file, the same content as a dict, or RayFed's
            ``{"cross_silo_comm": ..., "barrier_on_initializing": ...}`` dict.
            When neither ``config`` nor ``addresses`` is given, the path in
            ``$FED_CONFIG`` is used (``fed run`` sets it).
        tls_config: RayFed's ``{"ca_cert", "cert", "key"}``.
        job_name: overrides the file's job name.

    Raises:
        ConfigError: anything is missing, unknown or malformed.
    """
    if config is None and addresses is None and os.environ.get(CONFIG_ENV):
        config = os.environ[CONFIG_ENV]
    if isinstance(config, (str, os.PathLike)):
        file_cfg: Optional[FileConfig] = load_file_config(config)
        source = str(config)
    elif isinstance(config, Mapping) and "parties" in config:
        source = "the config dict"
        try:
            file_cfg = FileConfig.model_validate(dict(config))
        except ValidationError as err:
            raise _explain(err, source) from None
        _check_addresses(file_cfg.parties, source)
    else:
        source = "fed.init(config=...)"
        if config is not None and not isinstance(config, Mapping):
            raise ConfigError(f"fed.init(config=...) must be a YAML path or a dict, not {type(config).__name__}")
        try:
            rayfed = RayFedConfig.model_validate(dict(config or {}))
        except ValidationError as err:
            raise _explain(err, source) from None
        if addresses is None:
            raise ConfigError("no parties given: pass fed.init(addresses={'alice': 'host:port', ...}) "
                              "or fed.init(config='path/to/config.yaml'), or set $FED_CONFIG to a config path")
        file_cfg = None

    if addresses is not None:
        if not isinstance(addresses, Mapping) or not addresses:
            raise ConfigError("fed.init(addresses=...) must be a non-empty dict {party: 'host:port'}")
        parties = {}
        for name, addr in addresses.items():
            old = file_cfg.parties.get(name) if file_cfg else None
            parties[name] = PartyConfig(address=addr, listen_address=old.listen_address if old else None)
        _check_addresses(parties, "fed.init(addresses=...)")
    else:
        assert file_cfg is not None  # without addresses the parties come from a config (else ConfigError above)
        parties = dict(file_cfg.parties)

    if file_cfg is not None:
        comm, barrier, tls = file_cfg.cross_silo_comm, file_cfg.barrier_on_initializing, file_cfg.tls
        job = job_name or file_cfg.job_name
    else:
        comm, barrier, tls = rayfed.cross_silo_comm, rayfed.barrier_on_initializing, None
        job = job_name or DEFAULT_JOB_NAME
    if tls_config is not None:
        try:
            tls = TlsConfig.model_validate(dict(tls_config))
        except ValidationError as err:
            raise _explain(err, "fed.init(tls_config=...)") from None

    party = party or os.environ.get(PARTY_ENV)
    if not party:
        raise ConfigError(f"no party given: pass fed.init(party='alice') or set ${PARTY_ENV}")
    if party not in parties:
        raise UnknownPartyError(party, parties, what="party (fed.init)")
    if not job or not isinstance(job, str):
        raise ConfigError("job_name must be a non-empty string")
    if tls is not None:
        tls = TlsConfig(**{k: v.replace("{party}", party) if isinstance(v, str) else v
                           for k, v in tls.model_dump().items()})
    me = parties[party]
    listen = me.listen_address or me.address
    return JobConfig(
        party=party,
        job_name=job,
        addresses={name: p.address for name, p in parties.items()},
        listen_address=listen,
        comm=comm,
        tls=tls,
        barrier_on_initializing=barrier,
    )


def allowed_globals(comm: CrossSiloComm) -> Optional[dict[str, tuple]]:
    """The allow-list in the transport's form ``{module: (names...)}``: the
    safe defaults plus the user's entries, or None when ``trust_peers``."""
    if comm.trust_peers:
        logging.getLogger("silofed").warning(
            "cross_silo_comm.trust_peers is true: data from other parties is unpickled without an allow-list, "
            "so any party of this job can run code here")
    return build_allowed(comm.serializing_allowed_list, comm.trust_peers)
