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


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_close_keeps_the_pipe_open_while_a_blocked_failure_handler_runs_and_it_is_closed_once_the_thread_ends(caplog):
    release, entered = threading.Event(), threading.Event()
    aborts = []

    def blocking_handler(failure):
        entered.set()
        release.wait(10)

    mgr = CleanupManager(check=lambda f: f.result(), abort=aborts.append, failure_handler=blocking_handler)
    wake_r, wake_w = mgr._wake_r, mgr._wake_w
    mgr.fail(RuntimeError("boom"))
    assert entered.wait(5)
    with caplog.at_level("ERROR", logger="silofed"):
        mgr.close(timeout_s=0.1)  # the handler outlives the close timeout
    assert mgr._error_thread.is_alive()
    assert _is_open(wake_r) and _is_open(wake_w), "the pipe was closed under the running error thread"
    assert any("still running" in r.getMessage() for r in caplog.records)
    with open(os.devnull) as other:  # a file opened now must not get the pipe's fd numbers
        assert other.fileno() not in (wake_r, wake_w)
    release.set()
    mgr._error_thread.join(5)
    assert not mgr._error_thread.is_alive() and len(aborts) == 1
    assert not _is_open(wake_r) and not _is_open(wake_w), "the error thread did not close the pipe when it ended"


def test_a_failure_after_close_writes_into_no_file_that_reused_the_pipe_fds(tmp_path):
    mgr = make_manager([], [])
    mgr.close()
    files = [open(tmp_path / f"f{i}", "w+b", buffering=0) for i in range(2)]  # likely reuse the freed numbers
    try:
        assert mgr.fail(RuntimeError("late")) and isinstance(mgr.failure, RuntimeError)
        for f in files:
            f.seek(0)
            assert f.read() == b"", "fail() wrote its wake-up byte into another file"
    finally:
        for f in files:
            f.close()


def test_close_closes_the_pipe_when_the_thread_ended():
    mgr = make_manager([], [])
    wake_r, wake_w = mgr._wake_r, mgr._wake_w
    mgr.close()
    assert not mgr._error_thread.is_alive()
    assert not _is_open(wake_r) and not _is_open(wake_w)
