"""Process-level hooks of a running job: SIGINT/SIGTERM, uncaught exceptions, exit.

* First Ctrl-C (or SIGTERM): the party starts an unintended shutdown (abort
  broadcast through the error queue) and the program unwinds as usual.
* Second Ctrl-C: exit at once.
* An uncaught exception marks the job as failed before ``atexit`` runs
  ``fed.shutdown``.
Nothing here takes a blocking lock: see ``CleanupManager.fail``.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any, Callable, Optional

from fed._errors import InterruptedJobError

__all__ = ["InterruptedJobError", "ProcessHooks"]  # InterruptedJobError: its old home; defined in fed._errors


class ProcessHooks:
    """Installs and removes the hooks for one job.

    Args:
        on_failure: ``on_failure(error)`` enters the failing state (must be
            signal-safe: non-blocking).
        on_exit: called at interpreter exit if the job is still running.
    """

    def __init__(self, on_failure: Callable[[BaseException], bool], on_exit: Callable[[], None]):
        self._on_failure = on_failure
        self._on_exit = on_exit
        self._interrupts = 0
        self._old_handlers: dict[int, Any] = {}
        self._old_excepthook: Optional[Callable] = None
        self.exiting_with_exception: Optional[BaseException] = None

    def install(self) -> None:
        """Install signal handlers (main thread only), the excepthook and atexit."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[signum] = signal.signal(signum, self._on_signal)
        self._old_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        atexit.register(self._on_exit)

    def uninstall(self) -> None:
        """Restore what install replaced."""
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._old_handlers.items():
                signal.signal(signum, handler)
        self._old_handlers.clear()
        if self._old_excepthook is not None and sys.excepthook == self._excepthook:
            sys.excepthook = self._old_excepthook
        atexit.unregister(self._on_exit)

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        self._interrupts += 1
        name = signal.Signals(signum).name
        if self._interrupts > 1:
            os.write(2, f"silofed: second {name}, exiting now\n".encode())
            os._exit(128 + signum)
        self._on_failure(InterruptedJobError(name, f"the party received {name}"))
        raise InterruptedJobError(name)

    def _excepthook(self, exc_type: type[BaseException], exc: BaseException,
                    tb: Optional[TracebackType]) -> None:
        self.exiting_with_exception = exc
        self._on_failure(exc)
        (self._old_excepthook or sys.__excepthook__)(exc_type, exc, tb)
