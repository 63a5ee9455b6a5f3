"""The public entry points: init, get, kill, shutdown, stats."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import time
from typing import Any, Callable, Mapping, Optional, Sequence, TypeGuard, Union

import ray

from fed import _runtime
from fed._cleanup import CleanupManager
from fed._config import JobConfig, allowed_globals, load_job_config
from fed._errors import ConfigError, FedError, FedTimeoutError, NotInitializedError, PeerUnavailableError, translate
from fed._hosts import ReceiveCancelled, TimedOut, start_hosts
from fed._job import NOT_FETCHED, Job
from fed._logging import configure_logging
from fed._object import FedObject
from fed._remote import FedActorHandle
from fed._runtime import Runtime, current_job, describe_failure
from fed._timeline import TIMELINE_DIR_ENV, build_trace, write_trace
from proxy import TlsFiles, TransportConfig

logger = logging.getLogger("silofed")

_SHUTDOWN_WAIT_S = 60.0
_CONTROL_WAIT_S = 5.0
_DEPARTED_CHECK_S = 1.0  # how often fed.shutdown checks for peers that left while sends are pending
_DONE_CHECK_S = 0.05  # how often it checks whether a peer it is still telling DONE has left meanwhile


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
        reuse_buffer_bytes=comm.reuse_buffer_bytes,
        tls=tls,
        allowed_globals=allowed_globals(comm),
        grpc_options=tuple(tuple(o) for o in comm.grpc_channel_options or ()),
        peer_timeout_s=comm.peer_timeout_ms / 1000,
        ping_interval_s=comm.ping_interval_ms / 1000,
    )


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
        answers = [f.result() for f in [job.sender.ping(p) for p in waiting]]
        reasons = {p: why for p, why in zip(waiting, answers, strict=True) if why is not None}
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
    sending_failure_handler: Optional[Callable[[BaseException], None]] = None,
    *,
    failure_handler: Optional[Callable[[BaseException], None]] = None,
    ray_address: Optional[str] = None,
    ray_init_kwargs: Optional[Mapping[str, Any]] = None,
    **rayfed_options: Any,
) -> None:
    """Join a federated job as ``party``.

    Must be called by every party, with the same parties and job name. Starts
    this party's receiver (listening on its address) and sender proxies, and
    installs SIGINT/SIGTERM handlers (main thread only) and an exit hook.

    Args:
        addresses: RayFed form ``{party: "host:port"}``; or give ``config``.
            With neither, the YAML path in ``$FED_CONFIG`` is used (``fed run`` sets it).
        party: this party's name; defaults to ``$FED_PARTY``.
        config: a YAML config path, the same content as a dict, or RayFed's
            ``{"cross_silo_comm": {...}, "barrier_on_initializing": bool}``.
        tls_config: RayFed form ``{"ca_cert", "cert", "key"}``.
        logging_level: level of the ``silofed`` logger.
        job_name: overrides the config's job name.
        sending_failure_handler: RayFed's name for ``failure_handler``.
        failure_handler: called once, with the error, on an unintended
            shutdown (a send failed for good, a signal, an uncaught exception).
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
    if _runtime.current() is not None:
        raise FedError("fed.init was already called in this process: call fed.shutdown() first")
    cfg = load_job_config(party=party, addresses=addresses, config=config, tls_config=tls_config, job_name=job_name)
    configure_logging(cfg.party, cfg.job_name, logging_level)
    transport = _transport_config(cfg)

    started_ray = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "logging_level": logging.WARNING, **(ray_init_kwargs or {})}
        ray.init(address=ray_address, **kwargs)
        started_ray = True
    try:
        hosts = start_hosts(transport, expose_error_trace=cfg.comm.expose_error_trace,
                            send_resources=cfg.comm.send_resource_label, recv_resources=cfg.comm.recv_resource_label,
                            start_timeout_s=cfg.comm.timeout_ms / 1000)
    except Exception as exc:
        if started_ray:
            ray.shutdown()
        _raise_translated(exc)
    job = Job(cfg, hosts, started_ray, track_send=lambda send: None)
    runtime = Runtime(job, failure_handler or sending_failure_handler, at_exit=lambda: shutdown(_exiting=True))
    _runtime.install(runtime)
    runtime.hooks.install()
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
    sends it to every other party, then all return the same values. A lone
    object owned here returns once its sends are handed to gRPC (at most
    2 ms more; it does not wait for the peers' answers).

    Args:
        fed_objects: one FedObject or a list of them.
        timeout: seconds to wait at most; default ``cross_silo_comm.recv_timeout_ms``,
            else as long as the peers are alive.

    Returns:
        the value, or a list of values in the same order.

    Raises:
        RemoteError: the producing task failed at another party.
        PeerUnavailableError: a peer aborted or stopped answering.
        FedTimeoutError: ``timeout`` passed before every value arrived.
        FedError: another transport failure (see fed.FedError's tree).
    """
    job = current_job()
    single = isinstance(fed_objects, FedObject)
    objs: list[FedObject] = [fed_objects] if isinstance(fed_objects, FedObject) else list(fed_objects)
    for obj in objs:
        if not isinstance(obj, FedObject):
            raise ConfigError(f"fed.get takes FedObjects (results of fed calls), not {type(obj).__name__}")
    if timeout is None and job.config.comm.recv_timeout_ms is not None:
        timeout = job.config.comm.recv_timeout_ms / 1000
    started = time.time()
    values = [job.local_value(obj) for obj in objs]  # posts the receives of objects from peers
    # A lone object owned here is sent once fed.get has its value: the sender
    # may send that value instead of waiting for Ray again (REP 0120). Only a
    # lone one: with several, the wait for the others (perhaps computed from
    # this one at a peer) would hold its sends.
    send_fetched = len(objs) == 1 and objs[0].get_party() == job.party
    if not send_fetched:
        for obj in objs:
            if obj.get_party() == job.party:
                job.publish(obj)
    outcome, got = "failed", None
    try:
        got = job.receiver.wait(values, timeout)
        outcome = "ok"
    except TimedOut as timed_out:
        error: FedError = _timed_out(objs, timed_out.missing, timeout)
        job.note_failure(error)
        raise error from None
    except ReceiveCancelled as cancelled:
        obj = objs[cancelled.index]
        error = NotInitializedError(
            f"fed.shutdown() ran while fed.get waited for object {obj.get_fed_task_id()} produced by "
            f"{obj.producer!r} at party {obj.get_party()!r}; call fed.get before fed.shutdown")
        job.note_failure(error)
        raise error from None
    except Exception as exc:
        job.note_failure(translate(exc) or exc)
        _raise_translated(exc)
    finally:
        if send_fetched:  # on failure or timeout the sends wait for the value themselves
            job.publish(objs[0], NOT_FETCHED if got is None else got[0])
        job.gets.append((started, time.time() - started, len(objs), objs[0]._key if objs else "", outcome))
    assert got is not None
    return got[0] if single else got


def _timed_out(objs: list[FedObject], missing: list[int], timeout: Optional[float]) -> FedTimeoutError:
    first = objs[missing[0]]
    return FedTimeoutError(
        f"fed.get timed out after {timeout} s waiting for {len(missing)} object(s), first {first.get_fed_task_id()} "
        f"produced by {first.producer!r} at party {first.get_party()!r}")


def kill(actor: FedActorHandle, *, no_restart: bool = True) -> None:
    """Kill a federated actor. Only its own party does anything; others return at once."""
    if not isinstance(actor, FedActorHandle):
        raise ConfigError(f"fed.kill takes an actor handle from Cls.party(p).remote(), not {type(actor).__name__}")
    current_job()
    if actor._ray_handle is None:
        return

    def kill_now() -> None:
        try:
            handle = actor._resolved_handle()
        except Exception:
            return  # its creation failed: there is no actor
        ray.kill(handle, no_restart=no_restart)

    actor._lane.submit([], kill_now)  # after the calls to it that wait for inputs


def stats() -> dict:
    """Transport figures of this party, since ``fed.init``.

    Returns:
        A dict::

            {"party": "alice", "job": "demo",
             "sent": {peer: {
                 "sent": int,             # objects delivered to peer
                 "sent_bytes": int,       # their payload bytes
                 "retries": int,          # pushes retried (peer unreachable)
                 "busy": int,             # pushes the peer answered busy (buffer full)
                 "duplicates": int,       # pushes the peer already had
                 "failed": int,           # sends failed for good
                 "in_flight": int,        # sends not yet acknowledged
                 "control": int,          # abort/done messages (not in "sent")
                 "send_ms_total": int,
                 "latency_ms": {"count", "window", "mean_ms", "max_ms",
                                "p50_ms", "p90_ms", "p99_ms"}}},
             "received": {
                 "received": int, "received_bytes": int,   # all sources
                 "from": {peer: {"received": int, "received_bytes": int}},
                 "duplicates": int, "busy_replies": int,
                 "buffered_bytes": int,       # arrived, not yet asked for
                 "peak_buffered_bytes": int,  # peak of buffered plus reserved
                 "rejected": {reason: int},   # refused messages by reason
                 "payload_buffers": {         # buffers of payloads >= 1 MiB (REP 0170)
                     "mapped": int, "reused": int, "idle_bytes": int}}}

        A peer appears under ``"sent"`` once something was sent to it.
        Latency is the duration of a send, from the start of its push to the
        peer's ack (retries included; a small object's ack may wait up to
        20 ms at the peer to be batched with others); ``count``, ``mean_ms`` and ``max_ms``
        cover every send, the percentiles the last ``window`` (at most 1024)
        sends, and are absent before the first one. The same figures are
        exported as Ray metrics named ``silofed_*`` (tags party, peer, job).

    Raises:
        NotInitializedError: outside fed.init/fed.shutdown.
    """
    job = current_job()
    sent, received = job.sender.stats(), job.receiver.stats()
    return {"party": job.party, "job": job.config.job_name, "sent": sent.result(), "received": received.result()}


def timeline(path: Union[str, os.PathLike]) -> int:
    """Write this party's timeline to ``path`` as a Chrome trace (JSON).

    Open it in chrome://tracing or https://ui.perfetto.dev. It holds complete
    ("X") events with wall-clock ``ts``/``dur`` in microseconds, one process
    per party and rows per activity:

    * ``call``: each fed call made here (every party makes every call), with
      its sequence id, party, producer name and keys; its duration is the
      submission (and argument pushes) only: how long a local task then ran
      is not recorded here (``ray timeline`` shows Ray's own tasks);
    * ``get``: each ``fed.get`` wait, with its outcome;
    * ``send``: each push to a peer, from its start to the peer's ack, with
      peer, key, producer, kind, bytes, retries and outcome;
    * ``arrive``: data streaming in from a peer (header to last chunk);
    * ``recv``: a receive posted until its data was there.

    Only the last 100,000 events of each kind of record are kept (the count of
    dropped ones is in ``otherData``). Sends still in flight are not included:
    call it after the last ``fed.get``, or set ``$FED_TIMELINE_DIR`` so that
    ``fed.shutdown`` writes ``<dir>/<job>-<party>.json`` after the last sends.

    Args:
        path: the file to write (its directory is created).

    Returns:
        the number of events written (metadata rows excluded).

    Raises:
        NotInitializedError: outside fed.init/fed.shutdown.
    """
    return _write_timeline(current_job(), path)


def _write_timeline(job: Job, path: Union[str, os.PathLike]) -> int:
    sent_future, received_future = job.sender.timeline(), job.receiver.timeline()
    sent, received = sent_future.result(), received_future.result()
    dropped = sent["dropped"] + received["dropped"] + job.calls.dropped + job.gets.dropped
    trace = build_trace(job.party, list(job.config.addresses), job.config.job_name, job.calls.snapshot(),
                        job.gets.snapshot(), sent["events"], received["events"], dropped)
    write_trace(trace, path)
    return sum(1 for e in trace["traceEvents"] if e["ph"] != "M")


def _peer_states(job: Job) -> Optional[Mapping[str, str]]:
    """``{peer: state}`` as the receiver knows it now, or None if the receiver is gone."""
    try:
        return job.receiver.wait_peers_finished(0.0).result(timeout=10)
    except Exception as exc:
        logger.warning("could not ask the receiver which peers left: %s", exc)
        return None


def _drop_sends_to_departed_peers(job: Job) -> None:
    """Cancel pending sends to peers that finished, aborted or became unreachable: nobody will take them."""
    states = _peer_states(job)
    if states is None:  # the sends run into their own timeouts
        return
    for peer, state in states.items():
        if state != "running":
            dropped = job.drop_sends_to(peer)
            if dropped:
                logger.warning("dropping %d pending send(s) to party %s: it left the job (%s)", dropped, peer, state)


def _wait_for_sends(job: Job, cleanup: CleanupManager, timeout_s: float) -> bool:
    """Wait for pending sends, dropping those to peers that left meanwhile. False on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        _drop_sends_to_departed_peers(job)
        left = deadline - time.monotonic()
        if cleanup.wait_for_sends(max(0.0, min(left, _DEPARTED_CHECK_S))):
            return True
        if left <= _DEPARTED_CHECK_S:
            return False


def _tell_peers_done(job: Job) -> None:
    """Send DONE to every peer; one attempt only to a peer that already finished or left
    (it may still listen, waiting for the others; if it is gone, nobody waits for our DONE).

    A peer whose own DONE arrives while ours is still being retried (it left
    before ours got through) is not retried further.
    """
    states = _peer_states(job) or {}
    done = {p: job.sender.send_control(p, "done", retry_s=2.0 if states.get(p, "running") == "running" else 0.0)
            for p in job.peers}
    deadline = time.monotonic() + _CONTROL_WAIT_S
    while True:
        retrying = {p: f for p, f in done.items() if not f.done()}
        left = deadline - time.monotonic()
        if not retrying or left <= 0:
            return
        concurrent.futures.wait(list(retrying.values()), timeout=min(left, _DONE_CHECK_S))
        states = _peer_states(job) or {}
        for peer, future in retrying.items():
            if states.get(peer, "running") != "running":
                future.cancel()


def _wait_for_peers_to_finish(job: Job, timeout_s: float) -> list[FedError]:
    """Wait (with ``exit_on_failure``) at most ``timeout_s`` for every peer to say DONE or ABORT.

    A live peer that has not finished when the wait runs out (stuck, or
    running much longer than this party) does not hold this party: it is
    logged, naming the peers, and not counted as a failure, since nothing
    says it failed (reps/0002-failure-model.md).

    Returns:
        The failures to report, empty if no peer is known to have failed: a
        ``PeerUnavailableError`` per peer that aborted or became unreachable,
        or a ``FedError`` if the receiver could not say.
    """
    try:
        states = job.receiver.wait_peers_finished(timeout_s).result(max(timeout_s, 0.0) + _CONTROL_WAIT_S)
    except Exception as exc:  # the receiver is gone or does not answer
        return [FedError(f"could not learn whether the other parties finished the job ({exc!r}); "
                         "counted as a failure, as cross_silo_comm.exit_on_failure cannot tell success")]
    running = sorted(peer for peer, state in states.items() if state == "running")
    if running:
        logger.warning(
            "parties %s were still running %g s after this party began waiting for them to finish at "
            "fed.shutdown (cross_silo_comm.exit_on_failure); not waiting longer, so this party's exit status "
            "does not tell whether they fail. Pass a larger timeout to fed.shutdown to wait for them.",
            running, timeout_s)
    return [PeerUnavailableError(f"party {peer!r} did not finish the job cleanly: {state}", peer)
            for peer, state in states.items() if state not in ("done", "running")]


def _is_failure(exc: Optional[BaseException]) -> TypeGuard[BaseException]:
    if isinstance(exc, SystemExit):
        return exc.code not in (0, None)
    return exc is not None


def shutdown(timeout: float = _SHUTDOWN_WAIT_S, *, _exiting: bool = False) -> None:
    """Leave the job: deliver pending sends, tell the peers, stop the proxies, free the port.

    Called while an exception propagates (e.g. in a ``finally``), it is an
    unintended shutdown: peers are told the job aborted. With
    ``cross_silo_comm.exit_on_failure`` it then waits (at most ``timeout``
    seconds) for every peer to finish and exits the process with status 1 if
    any party failed or a peer was still running when the wait ran out.
    Afterwards ``fed.init`` may be called again in the same process; if
    fed.init started Ray, Ray is stopped too. Safe to call twice.

    Args:
        timeout: seconds to wait at most for pending sends, and then, with
            ``exit_on_failure``, at most for the peers to finish.
    """
    rt = _runtime.current()
    if rt is None:
        return
    job, cleanup = rt.job, rt.cleanup
    comm = job.config.comm
    exit_on_failure = comm.exit_on_failure or comm.exit_on_sending_failure
    handling = sys.exc_info()[1] or rt.hooks.exiting_with_exception
    if _is_failure(handling):
        cleanup.fail(handling)
    try:
        if not cleanup.failing or comm.continue_waiting_for_data_sending_on_error is not False:
            if not _wait_for_sends(job, cleanup, timeout):
                logger.error("sends still pending after %.0f s at shutdown; they are dropped", timeout)
        if exit_on_failure and job.seen_failure is not None:
            cleanup.fail(job.seen_failure)
        if not cleanup.failing:
            _tell_peers_done(job)
            if exit_on_failure:
                for peer_failure in _wait_for_peers_to_finish(job, timeout):
                    logger.error("%s", peer_failure)
                    job.note_failure(peer_failure)
        cleanup.wait_for_abort(_CONTROL_WAIT_S * 2)
        timeline_dir = os.environ.get(TIMELINE_DIR_ENV)
        if timeline_dir:
            try:
                out = os.path.join(timeline_dir, f"{job.config.job_name}-{job.party}.json")
                _write_timeline(job, out)
                logger.info("wrote the timeline of this party to %s", out)
            except Exception as exc:  # never let the timeline spoil a shutdown
                logger.warning("could not write the timeline to %s: %s", timeline_dir, exc)
        job.hosts.close(10)
        job.submitter.stop(10)
    finally:
        cleanup.close()
        rt.hooks.uninstall()
        _runtime.install(None)
        if job.started_ray:
            ray.shutdown()
    failed = cleanup.failure or job.seen_failure
    if exit_on_failure and failed is not None:
        logger.error("exiting with status 1 after a failure: %s", describe_failure(failed, True))
        if _exiting:
            os._exit(1)
        if not _is_failure(handling):
            sys.exit(1)
