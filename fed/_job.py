"""The running job at this party: sequence ids, proxies, sends and receives.

One ``Job`` exists between ``fed.init`` and ``fed.shutdown``. Every fed call at
every party goes through :meth:`Job.call`, which takes the next sequence id
(identical at every party because every party runs the same program) and then
either submits the Ray task here or sends the arguments this party owns to
the party that runs it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from typing import Any, Callable, Optional

import ray

from fed._args import iter_fed_objects, materialize
from fed._config import JobConfig
from fed._errors import ConfigError, NotInitializedError, UnknownPartyError
from fed._object import FedObject
from proxy._stats import EventLog

logger = logging.getLogger("silofed")

class Job:
    """State of one federated job at this party.

    Args:
        config: the validated job configuration.
        sender: this party's sender (fed._sender_host: DriverSender or ActorSender).
        receiver: handle of this party's receiver proxy actor.
        started_ray: True if fed.init started Ray and shutdown must stop it.
        track_send: hands each send's future to the cleanup manager.
    """

    def __init__(self, config: JobConfig, sender, receiver, started_ray: bool, track_send: Callable[[Any], None]):
        self.config = config
        self.party = config.party
        self.peers = [p for p in config.addresses if p != config.party]
        self.sender = sender
        self.receiver = receiver
        self.started_ray = started_ray
        self.track_send = track_send
        # the first failure seen here (raised by fed.get, or a local task's error sent to peers)
        self.seen_failure: Optional[BaseException] = None
        self._seq = itertools.count()
        # bounded records for fed.timeline: (start_s, submit_s, seq, party, producer, keys)
        # and (start_s, wait_s, n_objects, first_key, outcome)
        self.calls = EventLog()
        self.gets = EventLog()
        self._sends_to: dict[str, set] = collections.defaultdict(set)  # peer -> futures of pending sends

    def check_party(self, party: Optional[str], what: str) -> str:
        """Validate the party a call is bound to."""
        if party is None:
            raise ConfigError(f"{what} is not bound to a party: call .party('name').remote(...); "
                              f"the job's parties are {sorted(self.config.addresses)}")
        if party not in self.config.addresses:
            raise UnknownPartyError(party, self.config.addresses, what=f"party for {what}")
        return party

    def next_seq(self) -> int:
        """Take the next sequence id."""
        return next(self._seq)

    def local_ref(self, obj: FedObject) -> ray.ObjectRef:
        """An ObjectRef of ``obj``'s value at this party, posting its receive once."""
        if obj._ref is None:
            if obj._owner == self.party:
                raise RuntimeError(f"{obj!r} is owned here but has no result")
            obj._ref = self.receiver.recv.remote(obj._owner, obj._key, obj._producer)
        return obj._ref

    def push(self, obj: FedObject, dst: str) -> None:
        """Send ``obj`` (owned here) to ``dst``, at most once per destination."""
        if dst in obj._sent_to:
            return
        obj._sent_to.add(dst)
        future = self.sender.send(dst, obj._key, obj._producer, obj._ref)
        pending = self._sends_to[dst]
        pending.add(future)
        future.add_done_callback(pending.discard)
        self.track_send(future)

    def drop_sends_to(self, peer: str) -> int:
        """Cancel the pending sends to ``peer`` (it left the job); returns how many."""
        futures = list(self._sends_to[peer])
        return sum(1 for f in futures if f.cancel())

    def note_failure(self, failure: BaseException) -> None:
        """Remember that the job saw a failure (decides the exit code with exit_on_failure)."""
        if self.seen_failure is None:
            self.seen_failure = failure

    def call(
        self,
        party: str,
        producer: str,
        num_returns: int,
        submit: Callable[[list, dict], Any],
        args: tuple,
        kwargs: dict,
    ) -> Any:
        """Run one fed call: submit it here or send its arguments to ``party``.

        Returns:
            a FedObject, a list of ``num_returns`` FedObjects, or None when
            ``num_returns`` is 0.
        """
        if not isinstance(num_returns, int) or isinstance(num_returns, bool) or num_returns < 0:
            raise ConfigError(f"{producer}: num_returns must be a non-negative int, not {num_returns!r}")
        seq = self.next_seq()
        keys = [str(seq)] if num_returns == 1 else [f"{seq}#{i}" for i in range(num_returns)]
        start = time.time()
        result = self.dispatch(party, submit, args, kwargs)
        self.calls.append((start, time.time() - start, seq, party, producer, keys))
        if result is None:
            refs = [None] * len(keys)
        else:
            refs = [result] if num_returns == 1 else list(result)
        objs = [FedObject(party, key, producer, ref) for key, ref in zip(keys, refs)]
        if num_returns == 1:
            return objs[0]
        return objs or None

    def create_actor(self, party: str, submit: Callable[[list, dict], Any], args: tuple, kwargs: dict) -> Any:
        """Create an actor at ``party``; returns its Ray handle here, None elsewhere."""
        self.next_seq()
        return self.dispatch(party, submit, args, kwargs)

    def dispatch(self, party: str, submit: Callable[[list, dict], Any], args: tuple, kwargs: dict) -> Any:
        """Submit the call here if ``party`` is this party, else send it the arguments owned here.

        Returns:
            what ``submit`` returned, or None if the call runs elsewhere.
        """
        if party == self.party:
            a, kw = materialize(args, kwargs, self.local_ref)
            return submit(a, kw)
        for obj in iter_fed_objects((args, kwargs)):
            if obj._owner == self.party:
                self.push(obj, party)
        return None


_current: Optional[Job] = None


def current_job() -> Job:
    """The running job. Raises NotInitializedError outside fed.init/fed.shutdown."""
    if _current is None:
        raise NotInitializedError("silofed is not initialised: call fed.init(party=..., config=...) first")
    return _current


def set_current_job(job: Optional[Job]) -> None:
    """Install (or clear, with None) the running job."""
    global _current
    _current = job
