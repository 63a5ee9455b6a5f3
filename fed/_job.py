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

from fed._args import iter_fed_objects, materialize
from fed._config import JobConfig
from fed._deferred import Future, Lane, Submitter, split
from fed._errors import ConfigError, UnknownPartyError
from fed._hosts import Hosts, LocalValue
from fed._object import FedObject
from proxy import EventLog

logger = logging.getLogger("silofed")

# fed.get's argument to Job.publish when the program has not fetched the value
NOT_FETCHED = object()


class Job:
    """State of one federated job at this party.

    Args:
        config: the validated job configuration.
        hosts: this party's sender and receiver (fed._hosts).
        started_ray: True if fed.init started Ray and shutdown must stop it.
        track_send: hands each send's future to the cleanup manager.
    """

    def __init__(self, config: JobConfig, hosts: Hosts, started_ray: bool,
                 track_send: Callable[[Future], None]):
        self.config = config
        self.party = config.party
        self.peers = [p for p in config.addresses if p != config.party]
        self.hosts = hosts
        self.sender = hosts.sender
        self.receiver = hosts.receiver
        self.started_ray = started_ray
        self.track_send = track_send
        self.submitter = Submitter()  # submits the calls that waited for data (fed._deferred)
        # the first failure seen here (raised by fed.get, or a local task's error sent to peers)
        self.seen_failure: Optional[BaseException] = None
        self._seq = itertools.count()
        # bounded records for fed.timeline: (start_s, submit_s, seq, party, producer, keys)
        # and (start_s, wait_s, n_objects, first_key, outcome)
        self.calls = EventLog()
        self.gets = EventLog()
        self._sends_to: dict[str, set] = collections.defaultdict(set)  # peer -> futures of pending sends
        self._answered: set[str] = set()  # peers that acknowledged a send

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

    def new_lane(self) -> Lane:
        """A lane for calls that must reach Ray in program order (one per actor)."""
        return Lane(self.submitter.schedule)

    def local_value(self, obj: FedObject) -> LocalValue:
        """``obj``'s value at this party; the first time for an object from a peer, posts its receive."""
        if obj._value is None:
            if obj._owner == self.party:
                raise RuntimeError(f"{obj!r} is owned here but has no result")
            obj._value = self.receiver.recv(obj._owner, obj._key, obj._producer)
        return obj._value

    def push(self, obj: FedObject, dst: str) -> None:
        """Send ``obj`` (owned here) to ``dst``, at most once per destination."""
        if dst in obj._sent_to:
            return
        obj._sent_to.add(dst)
        self._track(dst, self.sender.send(dst, obj._key, obj._producer, self.local_value(obj)))

    def publish(self, obj: FedObject, fetched: Any = NOT_FETCHED) -> None:
        """Send ``obj`` (owned here) to every peer it was not sent to yet.

        ``fetched``: its value, if the program has just fetched it here (the
        sender may send that rather than read the value again).
        """
        if fetched is NOT_FETCHED:
            for dst in self.peers:
                self.push(obj, dst)
            return
        dsts = [p for p in self.peers if p not in obj._sent_to]
        if not dsts:
            return
        obj._sent_to.update(dsts)
        sends = self.sender.send_fetched(dsts, obj._key, obj._producer, self.local_value(obj), fetched)
        for dst, send in zip(dsts, sends, strict=True):
            self._track(dst, send)

    def _track(self, dst: str, send: Future) -> None:
        pending = self._sends_to[dst]
        pending.add(send)
        send.add_done_callback(pending.discard)
        if dst not in self._answered:
            send.add_done_callback(lambda f: self._note_answer(dst, f))
        self.track_send(send)

    def _note_answer(self, dst: str, send: Future) -> None:
        # a peer that acknowledged data is known to be up: if it dies before
        # answering a ping, it is then declared gone after peer_timeout
        # rather than after the longer connect timeout
        if dst not in self._answered and not send.cancelled() and send.exception() is None:
            self._answered.add(dst)
            self.receiver.peer_seen(dst)

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
        lane: Optional[Lane] = None,
    ) -> Any:
        """Run one fed call: submit it here or send its arguments to ``party``.

        ``lane`` orders the calls to one actor (see fed._deferred).

        Returns:
            a FedObject, a list of ``num_returns`` FedObjects, or None when
            ``num_returns`` is 0.
        """
        if not isinstance(num_returns, int) or isinstance(num_returns, bool) or num_returns < 0:
            raise ConfigError(f"{producer}: num_returns must be a non-negative int, not {num_returns!r}")
        seq = self.next_seq()
        keys = [str(seq)] if num_returns == 1 else [f"{seq}#{i}" for i in range(num_returns)]
        start = time.time()
        result = self.dispatch(party, submit, args, kwargs, lane)
        self.calls.append((start, time.time() - start, seq, party, producer, tuple(keys)))  # atomic: untracked by gc
        values: list[Optional[LocalValue]]
        if result is None:  # the call runs at another party
            values = [None] * len(keys)
        elif num_returns == 1:
            values = [LocalValue(result)]
        elif isinstance(result, Future):  # submitted once its inputs arrive
            values = [LocalValue(part) for part in split(result, num_returns)] if num_returns else []
        else:
            values = [LocalValue(ref) for ref in result]
        objs = [FedObject(party, key, producer, value) for key, value in zip(keys, values, strict=True)]
        if num_returns == 1:
            return objs[0]
        return objs or None

    def create_actor(self, party: str, submit: Callable[[list, dict], Any], args: tuple, kwargs: dict,
                     lane: Lane) -> Any:
        """Create an actor at ``party``; returns its Ray handle (or a Future of it) here, None elsewhere."""
        self.next_seq()
        return self.dispatch(party, submit, args, kwargs, lane)

    def dispatch(self, party: str, submit: Callable[[list, dict], Any], args: tuple, kwargs: dict,
                 lane: Optional[Lane] = None) -> Any:
        """Submit the call here if ``party`` is this party, else send it the arguments owned here.

        A call here whose inputs are still on their way is submitted once they
        are, behind the earlier calls of its ``lane``.

        Returns:
            what ``submit`` returned, a Future of it (submission deferred),
            or None if the call runs elsewhere.
        """
        if party != self.party:
            for obj in iter_fed_objects((args, kwargs)):
                if obj._owner == self.party:
                    self.push(obj, party)
            return None
        values = [self.local_value(obj) for obj in iter_fed_objects((args, kwargs))]
        inputs = [v.arrival for v in values if v.arrival is not None]

        def run() -> Any:
            a, kw = materialize(args, kwargs, _for_ray)
            return submit(a, kw)

        if not inputs and (lane is None or lane.idle()):
            return run()
        return (lane or self.new_lane()).submit(inputs, run)


def _for_ray(obj: FedObject) -> Any:
    """What a Ray call takes for ``obj``, an input of a call here whose value is here."""
    assert obj._value is not None
    return obj._value.for_ray()
