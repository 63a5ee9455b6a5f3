"""Lane and Submitter of fed._deferred, and split, driven with plain concurrent.futures Futures."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from fed._deferred import Future, Lane, Submitter, split

TIMEOUT = 5


def recorder(log: list, name: str, value=None):
    def run():
        log.append(name)
        return value
    return run


def reading(log: list, name: str, *inputs: Future):
    """A run() like fed's: it reads its inputs (so a failed input raises from it)."""
    def run():
        log.append(name)
        return [f.result(timeout=0) for f in inputs]
    return run


def in_thread(target) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(TIMEOUT)
    assert not t.is_alive(), "thread still blocked (deadlock?)"
    return t


def failed(exc: BaseException) -> Future:
    f = Future()
    f.set_exception(exc)
    return f


def done(value) -> Future:
    f = Future()
    f.set_result(value)
    return f


# -- immediate path ------------------------------------------------------------

def test_submit_without_inputs_on_idle_lane_runs_at_once_and_returns_value():
    log = []
    result = Lane().submit([], recorder(log, "a", 42))
    assert result == 42 and not isinstance(result, Future)
    assert log == ["a"]


def test_submit_with_done_inputs_on_idle_lane_runs_at_once():
    log = []
    lane = Lane()
    assert lane.submit([done(1), done(2)], recorder(log, "a", "ok")) == "ok"
    assert log == ["a"]
    assert lane.idle()


def test_exception_of_immediate_run_propagates_to_caller():
    lane = Lane()

    def run():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        lane.submit([done(1)], run)
    assert lane.idle()


# -- deferred path -------------------------------------------------------------

def test_pending_input_defers_run_until_set_then_future_gets_result():
    log = []
    lane = Lane()
    x = Future()
    out = lane.submit([x], recorder(log, "a", "result"))
    assert isinstance(out, Future) and not out.done()
    assert log == []
    x.set_result(1)
    assert out.result(timeout=TIMEOUT) == "result"
    assert log == ["a"]


def test_call_waits_for_all_its_inputs():
    log = []
    x, y = Future(), Future()
    out = Lane().submit([x, y], recorder(log, "a", 7))
    x.set_result(1)
    assert log == [] and not out.done()
    y.set_result(2)
    assert out.result(timeout=TIMEOUT) == 7 and log == ["a"]


def test_exception_of_deferred_run_fails_its_future():
    x = Future()
    err = RuntimeError("run failed")

    def run():
        raise err

    out = Lane().submit([x], run)
    x.set_result(1)
    assert out.exception(timeout=TIMEOUT) is err


# -- program order -------------------------------------------------------------

def test_later_call_without_inputs_waits_behind_earlier_waiting_call():
    log = []
    lane = Lane()
    x = Future()
    assert lane.idle()
    a = lane.submit([x], recorder(log, "A", "a"))
    b = lane.submit([], recorder(log, "B", "b"))
    assert isinstance(b, Future) and not b.done()
    assert log == []
    assert not lane.idle()
    x.set_result(1)
    assert a.result(timeout=TIMEOUT) == "a"
    assert b.result(timeout=TIMEOUT) == "b"
    assert log == ["A", "B"]
    assert lane.idle()


def test_later_call_whose_input_arrives_first_still_runs_second():
    log = []
    lane = Lane()
    x, y = Future(), Future()
    a = lane.submit([x], recorder(log, "A"))
    b = lane.submit([y], recorder(log, "B"))
    y.set_result(1)
    assert log == [] and not b.done()
    x.set_result(1)
    concurrent.futures.wait([a, b], timeout=TIMEOUT)
    assert a.done() and b.done()
    assert log == ["A", "B"]


def test_lanes_are_independent():
    log = []
    blocked, free = Lane(), Lane()
    x = Future()
    blocked.submit([x], recorder(log, "A"))
    assert free.submit([], recorder(log, "B", "b")) == "b"
    assert log == ["B"]
    assert not blocked.idle() and free.idle()


# -- failed and cancelled inputs -----------------------------------------------

def test_failed_input_at_submit_on_idle_lane_returns_failed_future_without_running():
    log = []
    err = KeyError("lost")
    out = Lane().submit([done(1), failed(err)], recorder(log, "a"))
    assert isinstance(out, Future)
    assert out.exception(timeout=0) is err
    assert log == []


def test_first_failed_input_is_the_reported_one():
    first, second = ValueError("first"), ValueError("second")
    out = Lane().submit([failed(first), failed(second)], recorder([], "a"))
    assert out.exception(timeout=0) is first


def test_cancelled_input_at_submit_fails_with_cancelled_error_without_running():
    log = []
    x = Future()
    assert x.cancel()
    out = Lane().submit([x], recorder(log, "a"))
    assert isinstance(out.exception(timeout=0), concurrent.futures.CancelledError)
    assert not out.cancelled()
    assert log == []


def test_failed_input_fails_waiting_call_without_running_it():
    log = []
    lane = Lane()
    x = Future()
    err = KeyError("lost")
    a = lane.submit([x], recorder(log, "A", "a"))
    x.set_exception(err)
    assert a.exception(timeout=TIMEOUT) is err
    assert log == []


def test_cancelled_input_fails_waiting_call_without_running_it():
    log = []
    x = Future()
    a = Lane().submit([x], recorder(log, "A", "a"))
    assert x.cancel()
    assert isinstance(a.exception(timeout=TIMEOUT), concurrent.futures.CancelledError)
    assert log == []


def test_failed_input_fails_waiting_reader_with_same_exception_and_later_calls_run():
    log = []
    lane = Lane()
    x = Future()
    err = KeyError("lost")
    a = lane.submit([x], reading(log, "A", x))
    b = lane.submit([], recorder(log, "B", "b"))
    x.set_exception(err)
    assert a.exception(timeout=TIMEOUT) is err
    assert b.result(timeout=TIMEOUT) == "b"
    assert log == ["B"]  # A never ran
    assert lane.idle()


def test_cancelled_input_fails_waiting_reader_with_cancelled_error():
    x = Future()
    a = Lane().submit([x], reading([], "A", x))
    assert x.cancel()
    assert isinstance(a.exception(timeout=TIMEOUT), concurrent.futures.CancelledError)


# -- threads and re-entrancy ---------------------------------------------------

def test_inputs_completed_from_another_thread_drive_the_lane():
    log = []
    lane = Lane()
    x, y = Future(), Future()
    a = lane.submit([x], reading(log, "A", x))
    b = lane.submit([y], reading(log, "B", x, y))
    c = lane.submit([], recorder(log, "C", "c"))
    in_thread(lambda: x.set_result(1))
    assert a.result(timeout=TIMEOUT) == [1]
    assert not b.done() and not c.done()
    in_thread(lambda: y.set_result(2))
    assert b.result(timeout=TIMEOUT) == [1, 2]
    assert c.result(timeout=TIMEOUT) == "c"
    assert log == ["A", "B", "C"]


def test_run_happens_in_the_thread_that_completes_the_input():
    threads = []
    x = Future()
    out = Lane().submit([x], lambda: threads.append(threading.current_thread()))
    t = in_thread(lambda: x.set_result(1))
    out.result(timeout=TIMEOUT)
    assert threads == [t]


def test_concurrent_inputs_keep_program_order():
    log = []
    lane = Lane()
    inputs = [Future() for _ in range(20)]
    outs = [lane.submit([f], recorder(log, i, i)) for i, f in enumerate(inputs)]
    workers = [threading.Thread(target=f.set_result, args=(None,), daemon=True) for f in reversed(inputs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(TIMEOUT)
    assert [o.result(timeout=TIMEOUT) for o in outs] == list(range(20))
    assert log == list(range(20))


def test_done_callback_of_output_may_submit_to_same_lane():
    log = []
    lane = Lane()
    x = Future()
    a = lane.submit([x], recorder(log, "A", "a"))
    nested = []
    a.add_done_callback(lambda _: nested.append(lane.submit([], recorder(log, "C", "c"))))
    lane.submit([], recorder(log, "B", "b"))
    in_thread(lambda: x.set_result(1))
    assert len(nested) == 1
    c = nested[0].result(timeout=TIMEOUT) if isinstance(nested[0], Future) else nested[0]
    assert c == "c"
    assert log == ["A", "B", "C"]
    assert lane.idle()


def test_done_callback_of_output_may_submit_waiting_call_to_same_lane():
    log = []
    lane = Lane()
    x, y = Future(), Future()
    a = lane.submit([x], recorder(log, "A"))
    nested = []
    a.add_done_callback(lambda _: nested.append(lane.submit([y], recorder(log, "C", "c"))))
    in_thread(lambda: x.set_result(1))
    assert len(nested) == 1 and not nested[0].done()
    y.set_result(1)
    assert nested[0].result(timeout=TIMEOUT) == "c"
    assert log == ["A", "C"]


def test_later_run_can_read_output_of_earlier_call_drained_together():
    lane = Lane()
    x = Future()
    a = lane.submit([x], lambda: "handle")
    b = lane.submit([], lambda: a.result(timeout=0.2))
    in_thread(lambda: x.set_result(1))
    assert b.result(timeout=TIMEOUT) == "handle"


# -- a lane scheduled by a Submitter (as the job's lanes are) -----------------

def _submit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "silofed-submit"]


def test_a_quick_submission_runs_at_once_in_the_thread_that_completed_its_input():
    submitter = Submitter(slow_s=5.0)
    lane = Lane(submitter.schedule)
    x = Future()
    out = lane.submit([x], lambda: threading.current_thread().name)
    completer = in_thread(lambda: x.set_result(1))
    assert out.result(0) == completer.name
    assert not _submit_threads()


def test_after_a_slow_submission_the_next_ones_do_not_hold_the_completing_thread_until_the_backoff_ends():
    submitter = Submitter(slow_s=0.01, backoff_s=0.5)
    lane = Lane(submitter.schedule)
    slow, x, y = Future(), Future(), Future()
    lane.submit([slow], lambda: time.sleep(0.05))
    slow.set_result(1)  # ran here, slowly: the back-off starts
    release = threading.Event()
    out = lane.submit([x], lambda: (release.wait(5), threading.current_thread().name)[1])
    x.set_result(1)  # returns at once: the run waits on the helper thread
    assert not out.done()
    release.set()
    assert out.result(5) == "silofed-submit"
    time.sleep(0.6)  # the back-off is over: at once in the completing thread again
    again = lane.submit([y], lambda: threading.current_thread().name)
    y.set_result(1)
    assert again.result(0) == threading.current_thread().name
    submitter.stop(5)
    assert not _submit_threads()


def test_submissions_on_the_helper_thread_keep_each_lanes_order():
    submitter = Submitter(slow_s=0.0, backoff_s=60)  # every submission after the first goes to the helper
    lane = Lane(submitter.schedule)
    first = Future()
    lane.submit([first], lambda: None)
    first.set_result(1)
    inputs = [Future() for _ in range(20)]
    ran: list[int] = []
    outs = [lane.submit([f], lambda i=i: ran.append(i)) for i, f in enumerate(inputs)]
    for f in reversed(inputs):
        f.set_result(None)
    for out in outs:
        out.result(5)
    assert ran == list(range(20))
    submitter.stop(5)


# -- split ---------------------------------------------------------------------

def test_split_gives_ith_item_to_ith_future_when_resolved():
    f = Future()
    parts = split(f, 3)
    assert len(parts) == 3 and not any(p.done() for p in parts)
    f.set_result(("a", "b", "c"))
    assert [p.result(timeout=TIMEOUT) for p in parts] == ["a", "b", "c"]


def test_split_of_already_resolved_future():
    parts = split(done([1, 2]), 2)
    assert [p.result(timeout=0) for p in parts] == [1, 2]


def test_split_failure_fails_every_part_with_same_exception():
    f = Future()
    parts = split(f, 3)
    err = OSError("gone")
    f.set_exception(err)
    assert all(p.exception(timeout=TIMEOUT) is err for p in parts)


def test_split_cancelled_future_fails_every_part_with_cancelled_error():
    f = Future()
    parts = split(f, 2)
    assert f.cancel()
    for p in parts:
        assert isinstance(p.exception(timeout=TIMEOUT), concurrent.futures.CancelledError)
        assert not p.cancelled()


def test_split_of_deferred_lane_output():
    lane = Lane()
    x = Future()
    parts = split(lane.submit([x], lambda: ["r0", "r1"]), 2)
    in_thread(lambda: x.set_result(1))
    assert [p.result(timeout=TIMEOUT) for p in parts] == ["r0", "r1"]


def test_split_of_a_result_with_the_wrong_length_fails_every_part():
    whole = Future()
    parts = split(whole, 3)
    whole.set_result(("only", "two"))
    for part in parts:
        with pytest.raises(ValueError, match="declared 3 return values but gave 2"):
            part.result(timeout=5)
