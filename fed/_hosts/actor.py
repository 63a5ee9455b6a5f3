"""The proxies as async Ray actors (``cross_silo_comm.send_resource_label`` / ``recv_resource_label``).

Each proxy runs in a named actor holding the given resources, so that it can
be pinned to a gateway node: the only node that may reach the peers, or that
the peers connect to. Every send and receive is then a call to the actor.
Proxy actors record no Ray task events (one per message would flood Ray's
GCS; reps/0180-proxy-actors-without-task-events.md).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Any, Mapping, Optional, Sequence

import ray
from ray.exceptions import GetTimeoutError

from fed._errors import ConfigError
from fed._hosts.value import LocalValue, wait_for_values

logger = logging.getLogger("silofed")

Future = concurrent.futures.Future

_NAME_LINGERS_S = 10.0  # how long the name of a just-killed proxy actor may stay taken


def proxy_actor_options(name: str, resources: Optional[Mapping[str, float]]) -> dict[str, Any]:
    """Ray options of a proxy run as an actor: named, no CPU, many calls at once, and no
    task events (every message is a call to it; REP 0180)."""
    options: dict[str, Any] = dict(name=name, num_cpus=0, max_concurrency=100_000, enable_task_events=False)
    if resources:
        options["resources"] = dict(resources)
    return options


def start_proxy_actor(cls: type, name: str, resources: Optional[Mapping[str, float]], args: Sequence[Any],
                      ready: str, timeout_s: float) -> Any:
    """Create the named proxy actor and wait until its method ``ready`` answered; returns its handle.

    Raises:
        ConfigError: the name is taken (another job of that name runs in this Ray
            cluster), or the actor did not start within ``timeout_s`` (no node
            offers ``resources``).
        what ``ready`` raised (e.g. the receiver cannot listen); the actor is killed then.
    """
    options = proxy_actor_options(name, resources)
    deadline = time.monotonic() + _NAME_LINGERS_S
    while True:
        try:
            handle: Any = ray.remote(cls).options(**options).remote(*args)
            break
        except ValueError as exc:  # the name of a just-killed proxy may linger briefly
            if "already" not in str(exc) or time.monotonic() > deadline:
                raise ConfigError(f"cannot start {name}: {exc}. Is another silofed job with the same "
                                  "job_name running in this Ray cluster? Use a distinct job_name.") from None
            time.sleep(0.1)
    try:
        ray.get(getattr(handle, ready).remote(), timeout=timeout_s)
    except GetTimeoutError:
        ray.kill(handle)
        raise ConfigError(
            f"the proxy actor {name} did not start within {timeout_s:.0f} s: no node of this party's Ray "
            f"cluster offers the resources {dict(resources or {})} it asks for (cross_silo_comm."
            "send_resource_label / recv_resource_label); start a node with them, e.g. "
            "`ray start --resources '{\"gateway\": 1}'`, or remove the label") from None
    except BaseException:
        ray.kill(handle)
        raise
    return handle


class _ActorHost:
    """What both proxy actors offer: figures, events, stopping."""

    def __init__(self, handle: Any, what: str):
        self.handle = handle
        self._what = what

    def stats(self) -> Future:
        """A Future of the proxy's figures (its ``stats``)."""
        return self.handle.stats.remote().future()

    def timeline(self) -> Future:
        """A Future of the proxy's recorded events (its ``timeline``)."""
        return self.handle.timeline.remote().future()

    def close(self, timeout_s: float) -> None:
        """Stop the proxy (channels closed, server stopped) and kill the actor."""
        try:
            ray.get(self.handle.stop.remote(), timeout=timeout_s)
        except Exception as exc:
            logger.warning("stopping the %s proxy failed: %s", self._what, exc)
        ray.kill(self.handle)


class ActorSender(_ActorHost):
    """The sender proxy as an async Ray actor (see base.SenderHost).

    Args:
        handle: the actor handle (from ``start_proxy_actor``).
    """

    def __init__(self, handle: Any):
        super().__init__(handle, "sender")

    def send(self, dst: str, key: str, producer: str, value: LocalValue) -> Future:
        """Push ``value`` (or its producer's error) to ``dst`` as ``key``: a call to the actor, which
        reads the value from the object store. Cancelling the Future cancels the call."""
        sent: Future = Future()

        def push(_: Any = None) -> None:
            if sent.cancelled():
                return
            try:
                ref = value.object_ref()
            except BaseException as exc:  # a call that failed before reaching Ray: sent as its error
                ref = _reraise.remote(exc)
            call = self.handle.send.remote(dst, key, producer, [ref])
            sent.add_done_callback(lambda f: ray.cancel(call) if f.cancelled() else None)
            _copy_outcome(call.future(), sent)

        if value.arrival is None:
            push()
        else:
            value.arrival.add_done_callback(push)
        return sent

    def send_fetched(self, dsts: Sequence[str], key: str, producer: str, value: LocalValue,
                     fetched: Any) -> list[Future]:
        """As ``send`` to each of ``dsts``: the actor reads the value from its object store."""
        return [self.send(dst, key, producer, value) for dst in dsts]

    def send_control(self, dst: str, kind: str, cause: str = "", retry_s: float = 2.0) -> Future:
        """Tell ``dst`` that this party aborts (``"abort"``) or finished (``"done"``), retrying ``retry_s``."""
        return self.handle.send_control.remote(dst, kind, cause, retry_s).future()

    def ping(self, dst: str) -> Future:
        """A Future of None if ``dst`` answers, else of why not."""
        return self.handle.ping.remote(dst).future()


class ActorReceiver(_ActorHost):
    """The receiver proxy as an async Ray actor (see base.ReceiverHost); a receive is the
    ObjectRef of the actor call that returns the value.

    Args:
        handle: the actor handle (from ``start_proxy_actor``, ready once it listens).
    """

    def __init__(self, handle: Any):
        super().__init__(handle, "receiver")

    def recv(self, src: str, key: str, producer: str) -> LocalValue:
        """Post the receive of object ``key`` from ``src``: a call to the actor."""
        return LocalValue(self.handle.recv.remote(src, key, producer))

    def wait(self, values: Sequence[LocalValue], timeout: Optional[float]) -> list[Any]:
        """The values behind ``values`` (see base.ReceiverHost)."""
        return wait_for_values(values, timeout)

    def abort(self, origin: str, cause: str) -> Future:
        """Fail every pending and future receive (ReceiverProxy.abort)."""
        return self.handle.abort.remote(origin, cause).future()

    def peer_seen(self, peer: str) -> None:
        """Tell the liveness watch that ``peer`` answered (ReceiverProxy.peer_seen)."""
        self.handle.peer_seen.remote(peer)

    def wait_peers_finished(self, timeout_s: float) -> Future:
        """A Future of ``{peer: state}`` once every peer left, or after ``timeout_s``."""
        return self.handle.wait_peers_finished.remote(timeout_s).future()


@ray.remote(num_cpus=0)
def _reraise(exc: BaseException) -> None:
    raise exc


def _copy_outcome(source: Future, target: Future) -> None:
    """Resolve ``target`` as ``source`` resolves, unless ``target`` was cancelled meanwhile."""
    def copy(f: Future) -> None:
        if not target.set_running_or_notify_cancel():
            return
        if f.cancelled():
            target.set_exception(concurrent.futures.CancelledError())
        elif f.exception() is not None:
            target.set_exception(f.exception())
        else:
            target.set_result(f.result())

    source.add_done_callback(copy)
