"""fed.shutdown's DONE round, with a stand-in job (no Ray, no network)."""

from __future__ import annotations

import concurrent.futures
import threading
import time

from fed import _api, _runtime


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


# -- with exit_on_failure, fed.shutdown waits for the peers at most `timeout` ----------------------------

class _StuckPeersReceiver:
    """Answers ``wait_peers_finished`` as the proxy does: at once when nobody is running, else when
    ``finish_after_s`` passed or at the timeout (capped, so that an unbounded wait fails the test
    instead of hanging it). Records every timeout asked for."""

    CAP_S = 3.0

    def __init__(self, states: dict[str, str], finish_after_s: float = float("inf")):
        self.states, self.finish_after_s = dict(states), finish_after_s
        self.asked: list[float] = []
        self.closed = False

    def wait_peers_finished(self, timeout_s: float) -> concurrent.futures.Future:
        self.asked.append(timeout_s)
        future: concurrent.futures.Future = concurrent.futures.Future()
        if timeout_s <= 0 or "running" not in self.states.values():
            future.set_result(dict(self.states))
            return future
        if self.finish_after_s <= timeout_s:
            finished = {p: ("done" if s == "running" else s) for p, s in self.states.items()}
            threading.Timer(self.finish_after_s, future.set_result, (finished,)).start()
        else:
            threading.Timer(min(timeout_s, self.CAP_S), future.set_result, (dict(self.states),)).start()
        return future

    def close(self, timeout_s: float) -> None:
        self.closed = True


class _Hooks:
    exiting_with_exception = None

    def uninstall(self) -> None:
        pass


class _Stoppable:
    def stop(self, timeout_s: float) -> None:
        pass

    def close(self, timeout_s: float) -> None:
        pass


def _exit_on_failure_runtime(receiver):
    from types import SimpleNamespace

    from fed._cleanup import CleanupManager
    from fed._config import CrossSiloComm
    from fed._hosts import Hosts

    sender = _Sender(answering={"bob", "carol"})
    sender.close = lambda timeout_s: None
    job = _Job(receiver, sender)
    job.config = SimpleNamespace(comm=CrossSiloComm(exit_on_failure=True), job_name="test")
    job.party, job.started_ray, job.hosts, job.submitter = "alice", False, Hosts(sender, receiver, None), _Stoppable()
    job.seen_failure = None
    job.drop_sends_to = lambda peer: 0  # no pending sends
    job.note_failure = lambda failure: setattr(job, "seen_failure", job.seen_failure or failure)
    cleanup = CleanupManager(check=lambda f: f.result(), abort=lambda failure: None)
    return SimpleNamespace(job=job, cleanup=cleanup, hooks=_Hooks())


def test_shutdown_waits_for_a_stuck_peer_only_up_to_its_timeout_and_logs_it_without_failing(monkeypatch, caplog):
    monkeypatch.delenv(_api.TIMELINE_DIR_ENV, raising=False)
    receiver = _StuckPeersReceiver({"bob": "running", "carol": "done"})  # bob is alive but never finishes
    rt = _exit_on_failure_runtime(receiver)
    monkeypatch.setattr(_runtime, "_current", rt)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="silofed"):
        try:
            _api.shutdown(timeout=0.3)
        except SystemExit as exc:
            code = exc.code
        else:
            code = None
    took = time.monotonic() - started
    assert max(receiver.asked) == 0.3, receiver.asked  # the wait for the peers is bounded by `timeout`
    assert took < _StuckPeersReceiver.CAP_S, took
    assert code is None  # nothing says bob failed: not counted as a failure
    assert rt.job.seen_failure is None
    still_running = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert still_running and "['bob']" in still_running[0] and "carol" not in still_running[0]
    assert "larger timeout to fed.shutdown" in still_running[0]  # says what to do
    assert receiver.closed and _runtime.current() is None


def test_shutdown_with_peers_finishing_within_the_timeout_is_a_success(monkeypatch):
    monkeypatch.delenv(_api.TIMELINE_DIR_ENV, raising=False)
    receiver = _StuckPeersReceiver({"bob": "running", "carol": "running"}, finish_after_s=0.2)
    rt = _exit_on_failure_runtime(receiver)
    monkeypatch.setattr(_runtime, "_current", rt)
    _api.shutdown(timeout=2.0)  # no SystemExit
    assert rt.job.seen_failure is None and max(receiver.asked) == 2.0


def test_waiting_for_peers_reports_aborted_and_unreachable_peers_and_a_silent_receiver(monkeypatch):
    receiver = _StuckPeersReceiver({"bob": "aborted: it failed", "carol": "done"})
    failures = _api._wait_for_peers_to_finish(_Job(receiver, None), 1.0)
    assert [type(f) for f in failures] == [_api.PeerUnavailableError] and failures[0].peer == "bob"

    class Silent:
        def wait_peers_finished(self, timeout_s):
            return concurrent.futures.Future()  # never answers

    monkeypatch.setattr(_api, "_CONTROL_WAIT_S", 0.1)
    started = time.monotonic()
    (failure,) = _api._wait_for_peers_to_finish(_Job(Silent(), None), 0.1)
    assert time.monotonic() - started < 2 and "could not learn whether" in str(failure)
