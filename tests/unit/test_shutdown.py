"""fed.shutdown's DONE round, with a stand-in job (no Ray, no network)."""

from __future__ import annotations

import concurrent.futures
import threading
import time

from fed import _api


class _Receiver:
    """Peer states as the receiver would report them; ``leave`` marks a peer done later."""

    def __init__(self, states: dict[str, str]):
        self.states = dict(states)

    def leave(self, peer: str, after_s: float) -> None:
        threading.Timer(after_s, self.states.__setitem__, (peer, "done")).start()

    def wait_peers_finished(self, timeout_s: float) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(dict(self.states))
        return future


class _Sender:
    """DONE to ``answering`` peers is acknowledged at once; to the others it keeps retrying."""

    def __init__(self, answering: set[str]):
        self.answering = answering
        self.sent: dict[str, tuple[concurrent.futures.Future, float]] = {}

    def send_control(self, dst: str, kind: str, cause: str = "", retry_s: float = 2.0) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        if dst in self.answering:
            future.set_result(None)
        self.sent[dst] = (future, retry_s)
        return future


class _Job:
    def __init__(self, receiver, sender):
        self.peers = ["bob", "carol"]
        self.receiver, self.sender = receiver, sender


def test_done_is_not_retried_to_a_peer_that_says_done_meanwhile():
    receiver = _Receiver({"bob": "running", "carol": "running"})
    sender = _Sender(answering={"bob"})
    receiver.leave("carol", after_s=0.2)  # carol's DONE arrives while ours to it is retried (it left)
    started = time.monotonic()
    _api._tell_peers_done(_Job(receiver, sender))
    took = time.monotonic() - started
    assert took < 1.0, took  # not the whole wait for DONE acknowledgements (5 s)
    carol_done, retry_s = sender.sent["carol"]
    assert retry_s == 2.0 and carol_done.cancelled()
    assert sender.sent["bob"][0].result(0) is None


def test_done_goes_once_to_a_peer_that_already_left():
    receiver = _Receiver({"bob": "done", "carol": "running"})
    sender = _Sender(answering={"bob", "carol"})
    _api._tell_peers_done(_Job(receiver, sender))
    assert sender.sent["bob"][1] == 0.0 and sender.sent["carol"][1] == 2.0
