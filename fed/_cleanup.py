"""The cleanup manager: send watching, an error queue and its thread, one atomic shutdown flag.

* Every send this party started is **watched** through its Future's done
  callback: a send that failed for good starts the abort.
* The **error queue** carries the one abort of an unintended shutdown; its
  thread runs the user's failure handler and tells every peer, out of band
  of the sends, so an abort gets through even when data is stuck.
* ``fail`` is the only way into the failing state. It is a non-blocking
  test-and-set, safe from a signal handler: it takes no blocking lock (a
  handler interrupting a lock holder would deadlock) and wakes the error
  thread through a pipe. Whoever calls it first wins; later calls are no-ops,
  so the failure handler runs exactly once.
* The wake-up **pipe is closed only once nothing can use it**: after the
  error thread ended (if ``close`` gives up waiting for it, the thread closes
  the pipe itself when it ends) and after the one ``fail`` that writes to it
  has written. A closed fd number is soon reused by another file, which the
  thread would then read or ``fail`` write into.
See reps/0002-failure-model.md.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import threading
import time
from typing import Any, Callable, Optional

logger = logging.getLogger("silofed")


class CleanupManager:
    """Watches sends and delivers aborts.

    Args:
        check: ``check(future)`` returns the send's result or raises its error.
        on_send_result: called (in the thread completing the send) with each
            successful send's result.
        abort: ``abort(failure)`` tells every peer and fails local receives
            (error thread).
        failure_handler: the user's handler, run once with the failure.
    """

    def __init__(
        self,
        check: Callable[[Any], Any],
        abort: Callable[[BaseException], None],
        failure_handler: Optional[Callable[[BaseException], None]] = None,
        on_send_result: Optional[Callable[[Any], None]] = None,
    ):
        self._check = check
        self._abort = abort
        self._failure_handler = failure_handler
        self._on_send_result = on_send_result
        self._flag = threading.Lock()  # held for good once the party is failing
        self.failure: Optional[BaseException] = None
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Event()
        self._idle.set()
        self._errors: collections.deque = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._aborted = threading.Event()
        self._closing = False
        self._pipe_retiring = False  # set before the pipe is closed: fail() no longer writes to it
        self._fail_woke = False  # the one fail() that took the flag is done with the pipe
        self._pipe_lock = threading.Lock()  # close() and the error thread only (never fail())
        self._loop_ended = False
        self._thread_closes_pipe = False
        self._error_thread = threading.Thread(target=self._error_loop, name="silofed-error-queue", daemon=True)
        self._error_thread.start()

    # -- producers -------------------------------------------------------------

    def track(self, send: concurrent.futures.Future) -> None:
        """Watch a send until it completes."""
        with self._count_lock:
            self._in_flight += 1
            self._idle.clear()
        send.add_done_callback(self._send_done)

    def _send_done(self, send: concurrent.futures.Future) -> None:
        try:
            result = self._check(send)
        except BaseException as exc:  # a send failed for good
            logger.error("sending failed: %s", exc)
            self.fail(exc)
        else:
            if self._on_send_result is not None:
                self._on_send_result(result)
        with self._count_lock:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    def fail(self, failure: BaseException) -> bool:
        """Enter the failing state (first call only). Safe from signal handlers.

        Returns:
            True if this call started the failure, False if one was already under way.
        """
        if not self._flag.acquire(blocking=False):
            return False
        self.failure = failure
        self._errors.append(failure)
        if not self._pipe_retiring:  # after close nobody reads the pipe, and its fd may be reused soon
            try:
                os.write(self._wake_w, b"!")
            except OSError:  # pipe full: the thread is awake anyway
                pass
        self._fail_woke = True
        return True

    @property
    def failing(self) -> bool:
        """True once ``fail`` was called."""
        return self.failure is not None

    # -- waiting -------------------------------------------------------------------

    def wait_for_sends(self, timeout_s: float) -> bool:
        """Block until every tracked send completed. Returns False on timeout."""
        return self._idle.wait(timeout_s)

    def wait_for_abort(self, timeout_s: float) -> bool:
        """Block until the abort was delivered (if failing). Returns False on timeout."""
        return not self.failing or self._aborted.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the error thread and close its wake-up pipe once the thread has ended.

        If the thread is still busy after ``timeout_s`` (a failure handler or
        abort that does not return), this logs an error and leaves the pipe
        open; the thread closes it when it ends.
        """
        self._closing = True
        try:
            os.write(self._wake_w, b".")
        except OSError:
            pass
        self._error_thread.join(timeout_s)
        with self._pipe_lock:
            if not self._loop_ended:
                self._thread_closes_pipe = True
                logger.error("the error thread (failure handler or abort broadcast) is still running %.1f s "
                             "after shutdown asked it to stop; its pipe is closed when it ends. A failure "
                             "handler should return within seconds", timeout_s)
                return
        self._close_pipe()

    def _close_pipe(self) -> None:
        """Close both ends of the wake-up pipe once the thread ended and no ``fail`` is writing to it."""
        self._pipe_retiring = True
        # A fail() that took the flag before it could see _pipe_retiring writes once, at once.
        deadline = time.monotonic() + 1.0
        while self.failure is not None and not self._fail_woke:
            if time.monotonic() > deadline:
                logger.error("a failure is still waking the error thread; its pipe is left open")
                return
            time.sleep(0.001)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- threads ---------------------------------------------------------------------

    def _error_loop(self) -> None:
        try:
            self._run_errors()
        finally:
            with self._pipe_lock:
                self._loop_ended = True
                close_pipe = self._thread_closes_pipe
            if close_pipe:  # close() gave up waiting for this thread and left the pipe to it
                self._close_pipe()

    def _run_errors(self) -> None:
        while True:
            try:
                os.read(self._wake_r, 64)
            except OSError:
                return
            while self._errors:
                failure = self._errors.popleft()
                if self._failure_handler is not None:
                    try:
                        self._failure_handler(failure)
                    except Exception:
                        logger.exception("the failure handler raised")
                try:
                    self._abort(failure)
                except Exception:
                    logger.exception("telling the peers about the failure failed")
                self._aborted.set()
            if self._closing:
                return
