"""The cleanup manager: send watching, one abort, the handler exactly once under races."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import threading

from fed._cleanup import CleanupManager


def make_manager(calls, aborts):
    return CleanupManager(
        check=lambda f: f.result(),
        abort=aborts.append,
        failure_handler=calls.append,
    )


def test_failure_handler_runs_once_when_main_thread_signal_and_queues_race():
    for _ in range(20):
        calls, aborts = [], []
        mgr = make_manager(calls, aborts)
        start = threading.Barrier(3)
        failing_send = cf.Future()

        def from_thread(tag):
            start.wait()
            mgr.fail(RuntimeError(tag))

        old = signal.signal(signal.SIGUSR1, lambda *_: mgr.fail(RuntimeError("signal")))
        try:
            threads = [threading.Thread(target=from_thread, args=(t,)) for t in ("a", "b")]
            for t in threads:
                t.start()
            mgr.track(failing_send)  # its done callback fails it too
            start.wait()
            failing_send.set_exception(OSError("peer gone"))
            os.kill(os.getpid(), signal.SIGUSR1)
            mgr.fail(RuntimeError("main"))
            for t in threads:
                t.join()
            assert mgr.wait_for_abort(5)
            mgr.wait_for_sends(5)
        finally:
            signal.signal(signal.SIGUSR1, old)
            mgr.close()
        assert len(calls) == 1 and len(aborts) == 1
        assert calls[0] is aborts[0] is mgr.failure


def test_a_failed_send_starts_the_abort_and_healthy_sends_complete():
    calls, aborts = [], []
    mgr = make_manager(calls, aborts)
    ok = [cf.Future() for _ in range(5)]
    bad = cf.Future()
    for f in ok:
        mgr.track(f)
    mgr.track(bad)
    assert not mgr.wait_for_sends(0.2)
    for i, f in enumerate(ok):
        f.set_result(i)
    bad.set_exception(ConnectionError("refused"))
    assert mgr.wait_for_sends(5)
    assert mgr.wait_for_abort(5)
    mgr.close()
    assert isinstance(mgr.failure, ConnectionError)
    assert calls == aborts == [mgr.failure]


def test_no_failure_no_abort():
    calls, aborts = [], []
    mgr = make_manager(calls, aborts)
    f = cf.Future()
    mgr.track(f)
    f.set_result(1)
    assert mgr.wait_for_sends(5)
    assert mgr.wait_for_abort(0)
    mgr.close()
    assert calls == aborts == [] and mgr.failure is None
