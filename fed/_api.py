"""The public entry points: init, get, kill, shutdown, stats."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import ray
from ray.exceptions import GetTimeoutError, RayError

from fed._config import JobConfig, allowed_globals, load_job_config
from fed._errors import ConfigError, FedError, FedTimeoutError, PeerUnavailableError, translate
from fed._job import Job, current_job, set_current_job
from fed._logging import configure_logging
from fed._object import FedObject
from fed._remote import FedActorHandle
from proxy import ReceiverProxy, SenderProxy, TlsFiles, TransportConfig

logger = logging.getLogger("silofed")

_SHUTDOWN_WAIT_S = 60.0


def _transport_config(cfg: JobConfig) -> TransportConfig:
    comm = cfg.comm
    tls = None
    if cfg.tls is not None:
        tls = TlsFiles(ca_cert=cfg.tls.ca_cert, cert=cfg.tls.cert, key=cfg.tls.key,
                       peer_ca=dict(cfg.tls.peer_ca_certs or {}))
        pinned = [(f"peer_ca_certs.{p}", f) for p, f in tls.peer_ca.items()]
        for what, path in [("ca_cert", tls.ca_cert), ("cert", tls.cert), ("key", tls.key), *pinned]:
            if not os.path.isfile(path):
                raise ConfigError(f"tls.{what}: file {path!r} does not exist; create certificates with "
                                  "`fed certs --config CONFIG --out DIR`")
    return TransportConfig(
        job=cfg.job_name,
        party=cfg.party,
        listen_address=cfg.listen_address,
        peers={p: a for p, a in cfg.addresses.items() if p != cfg.party},
        chunk_bytes=comm.chunk_size_in_bytes,
        max_message_bytes=comm.messages_max_size_in_bytes,
        connect_timeout_s=comm.timeout_ms / 1000,
        unsolicited_budget_bytes=comm.unsolicited_buffer_bytes,
        tls=tls,
        allowed_globals=allowed_globals(comm),
        grpc_options=tuple(tuple(o) for o in comm.grpc_channel_options or ()),
    )


def _start_proxy(cls: type, name: str, resources: Optional[Mapping[str, float]], *args: Any):
    options: dict[str, Any] = dict(name=name, num_cpus=0, max_concurrency=100_000)
    if resources:
        options["resources"] = dict(resources)
    deadline = time.monotonic() + 10
    while True:
        try:
            return ray.remote(cls).options(**options).remote(*args)
        except ValueError as exc:  # the name of a just-killed proxy may linger briefly
            if "already" not in str(exc) or time.monotonic() > deadline:
                raise ConfigError(f"cannot start {name}: {exc}. Is another silofed job with the same "
                                  "job_name running in this Ray cluster? Use a distinct job_name.") from None
            time.sleep(0.1)


def _raise_translated(exc: BaseException) -> None:
    fed_error = translate(exc)
    if fed_error is not None:
        raise fed_error from exc
    raise exc


def _barrier(job: Job, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(job.peers)
    reasons: dict[str, str] = {}
    while waiting:
        answers = ray.get([job.sender.ping.remote(p) for p in waiting])
        reasons = {p: why for p, why in zip(waiting, answers) if why is not None}
        waiting = list(reasons)
        if waiting and time.monotonic() > deadline:
            peer = waiting[0]
            raise PeerUnavailableError(
                f"barrier_on_initializing: party {peer!r} at {job.config.addresses[peer]} did not answer "
                f"within {timeout_s:.0f} s ({reasons[peer]}); start it, or check its address", peer)
        if waiting:
            time.sleep(0.2)


def init(
    addresses: Optional[Mapping[str, str]] = None,
    party: Optional[str] = None,
    config: Union[None, str, os.PathLike, Mapping[str, Any]] = None,
    tls_config: Optional[Mapping[str, str]] = None,
    logging_level: str = "info",
    job_name: Optional[str] = None,
    sending_failure_handler: Optional[Callable[[Exception], None]] = None,
    *,
    ray_address: Optional[str] = None,
    ray_init_kwargs: Optional[Mapping[str, Any]] = None,
    **rayfed_options: Any,
) -> None:
    """Join a federated job as ``party``.

    Must be called by every party, with the same parties and job name. Starts
    this party's receiver (listening on its address) and sender proxies.

    Args:
        addresses: RayFed form ``{party: "host:port"}``; or give ``config``.
        party: this party's name; defaults to ``$FED_PARTY``.
        config: a YAML config path, the same content as a dict, or RayFed's
            ``{"cross_silo_comm": {...}, "barrier_on_initializing": bool}``.
        tls_config: RayFed form ``{"ca_cert", "cert", "key"}``.
        logging_level: level of the ``silofed`` logger.
        job_name: overrides the config's job name.
        sending_failure_handler: called with the error when a send fails for good.
        ray_address: connect to this Ray cluster if Ray is not initialised.
        ray_init_kwargs: extra ``ray.init`` arguments when silofed starts Ray.

    Raises:
        ConfigError: the configuration is invalid (the message says how to fix it).
        FedError: already initialised, or the proxies could not start.
    """
    unknown = set(rayfed_options) - {"sender_proxy_cls", "receiver_proxy_cls", "receiver_sender_proxy_cls"}
    if unknown:
        raise ConfigError(f"fed.init got unknown arguments {sorted(unknown)}")
    if any(rayfed_options.values()):
        raise ConfigError("custom proxy classes (sender_proxy_cls, ...) are not supported by silofed")
    try:
        current_job()
    except FedError:
        pass
    else:
        raise FedError("fed.init was already called in this process: call fed.shutdown() first")
    cfg = load_job_config(party=party, addresses=addresses, config=config, tls_config=tls_config, job_name=job_name)
    configure_logging(cfg.party, cfg.job_name, logging_level)
    transport = _transport_config(cfg)

    started_ray = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, **(ray_init_kwargs or {})}
        ray.init(address=ray_address, **kwargs)
        started_ray = True

    prefix = f"silofed:{cfg.job_name}:{cfg.party}"
    receiver = _start_proxy(ReceiverProxy, f"{prefix}:receiver", cfg.comm.recv_resource_label, transport)
    try:
        ray.get(receiver.start.remote())
    except RayError as exc:
        ray.kill(receiver)
        if started_ray:
            ray.shutdown()
        _raise_translated(exc)
    sender = _start_proxy(SenderProxy, f"{prefix}:sender", cfg.comm.send_resource_label,
                          transport, cfg.comm.expose_error_trace)
    job = Job(cfg, sender, receiver, started_ray)
    job.failure_handler = sending_failure_handler
    set_current_job(job)
    logger.info("joined job %s as %s, listening on %s", cfg.job_name, cfg.party, cfg.listen_address)
    if cfg.barrier_on_initializing:
        try:
            _barrier(job, cfg.comm.timeout_ms / 1000)
        except BaseException:
            shutdown()
            raise


def get(fed_objects: Union[FedObject, Sequence[FedObject]], timeout: Optional[float] = None) -> Any:
    """The values of FedObjects, at every party.

    Every party must call it for the same objects: the owner of each object
    sends it to every other party, then all return the same values.

    Args:
        fed_objects: one FedObject or a list of them.
        timeout: seconds to wait at most, or None to wait until the data arrives.

    Returns:
        the value, or a list of values in the same order.

    Raises:
        RemoteError: the producing task failed at another party.
        FedTimeoutError: ``timeout`` passed before every value arrived.
        FedError: another transport or peer failure (see fed.FedError's tree).
    """
    job = current_job()
    single = isinstance(fed_objects, FedObject)
    objs = [fed_objects] if single else list(fed_objects)
    for obj in objs:
        if not isinstance(obj, FedObject):
            raise ConfigError(f"fed.get takes FedObjects (results of fed calls), not {type(obj).__name__}")
    refs = []
    for obj in objs:
        if obj.get_party() == job.party:
            for peer in job.peers:
                job.push(obj, peer)
        refs.append(job.local_ref(obj))
    try:
        values = ray.get(refs, timeout=timeout)
    except GetTimeoutError:
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        missing = [o for o, r in zip(objs, refs) if r not in ready]
        first = missing[0]
        raise FedTimeoutError(
            f"fed.get timed out after {timeout} s waiting for {len(missing)} object(s), first {first.get_fed_task_id()} "
            f"produced by {first.producer!r} at party {first.get_party()!r}") from None
    except RayError as exc:
        _raise_translated(exc)
    return values[0] if single else values


def kill(actor: FedActorHandle, *, no_restart: bool = True) -> None:
    """Kill a federated actor. Only its own party does anything; others return at once."""
    if not isinstance(actor, FedActorHandle):
        raise ConfigError(f"fed.kill takes an actor handle from Cls.party(p).remote(), not {type(actor).__name__}")
    current_job()
    if actor._ray_handle is not None:
        ray.kill(actor._ray_handle, no_restart=no_restart)


def stats() -> dict:
    """Transport counters of this party: ``{"party", "job", "sent": {peer: ...}, "received": {...}}``."""
    job = current_job()
    sent, received = ray.get([job.sender.stats.remote(), job.receiver.stats.remote()])
    return {"party": job.party, "job": job.config.job_name, "sent": sent, "received": received}


def shutdown(timeout: float = _SHUTDOWN_WAIT_S) -> None:
    """Leave the job: wait for pending sends, stop the proxies, free the port.

    Afterwards ``fed.init`` may be called again in the same process. If
    fed.init started Ray, Ray is stopped too. Safe to call twice.

    Args:
        timeout: seconds to wait at most for pending sends.
    """
    try:
        job = current_job()
    except FedError:
        return
    try:
        pending = job.pending_sends
        if pending:
            done, not_done = ray.wait(pending, num_returns=len(pending), timeout=timeout)
            if not_done:
                logger.error("%d send(s) still pending after %.0f s at shutdown; they are dropped",
                             len(not_done), timeout)
            for ref in done:
                try:
                    ray.get(ref)
                except RayError as exc:
                    logger.error("a send failed: %s", translate(exc) or exc)
        for stop in (job.receiver.stop.remote(), job.sender.stop.remote()):
            try:
                ray.get(stop, timeout=10)
            except (RayError, concurrent.futures.TimeoutError) as exc:
                logger.warning("stopping a proxy failed: %s", exc)
        for actor in (job.receiver, job.sender):
            ray.kill(actor)
    finally:
        set_current_job(None)
        if job.started_ray:
            ray.shutdown()
