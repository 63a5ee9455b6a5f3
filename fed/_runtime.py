"""The one running job of this process and what keeps it: its cleanup manager and process hooks.

``fed.init`` installs a ``Runtime``; ``fed.shutdown`` removes it. Every fed
call finds the job through ``current_job``.
"""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any, Callable, Optional

from fed._cleanup import CleanupManager
from fed._errors import FedError, NotInitializedError, translate
from fed._job import Job
from fed._signals import ProcessHooks

logger = logging.getLogger("silofed")

_CONTROL_WAIT_S = 5.0  # how long an abort waits for the peers to take it


class Runtime:
    """A job with its cleanup manager (send watching, the abort) and process hooks (signals, exit).

    Args:
        job: the job.
        failure_handler: the user's handler, run once on an unintended shutdown.
        at_exit: called by the exit hook while this runtime is installed (fed.shutdown).
    """

    def __init__(self, job: Job, failure_handler: Optional[Callable[[BaseException], None]],
                 at_exit: Callable[[], None]):
        self.job = job
        self.cleanup = CleanupManager(
            check=result_translated,
            abort=self._abort,
            failure_handler=failure_handler,
            on_send_result=self._on_send_result,
        )
        self.hooks = ProcessHooks(on_failure=self.cleanup.fail, on_exit=self._at_exit)
        self._exit = at_exit
        job.track_send = self.cleanup.track

    def _on_send_result(self, result: Any) -> None:
        if result is None:  # a send dropped at shutdown (logged there)
            return
        _, sent_error = result
        if sent_error:
            self.job.note_failure(FedError("a task of this party failed; its error was sent to peers"))

    def _abort(self, failure: BaseException) -> None:
        job = self.job
        cause = describe_failure(failure, job.config.comm.expose_error_trace)
        logger.error("aborting job %s: %s", job.config.job_name, cause)
        futures = [job.sender.send_control(p, "abort", cause) for p in job.peers]
        futures.append(job.receiver.abort(job.party, f"it aborted the job: {cause}"))
        concurrent.futures.wait(futures, timeout=_CONTROL_WAIT_S)

    def _at_exit(self) -> None:
        if _current is self:
            self._exit()


def describe_failure(failure: BaseException, expose: bool) -> str:
    """What peers are told about a local failure: never the message of a user error unless exposed."""
    if isinstance(failure, FedError) or expose:
        return f"{type(failure).__name__}: {failure}"
    return f"{type(failure).__name__} (details redacted; see this party's log)"


def result_translated(future: concurrent.futures.Future) -> Any:
    """A send's result (None if it was cancelled: only fed.shutdown drops sends), or its error as a FedError."""
    if future.cancelled():
        return None
    try:
        return future.result()
    except Exception as exc:
        raise (translate(exc) or exc) from None


_current: Optional[Runtime] = None


def current() -> Optional[Runtime]:
    """The installed runtime, or None."""
    return _current


def install(runtime: Optional[Runtime]) -> None:
    """Install (or remove, with None) the runtime of this process."""
    global _current
    _current = runtime


def current_job() -> Job:
    """The running job. Raises NotInitializedError outside fed.init/fed.shutdown."""
    runtime = _current
    if runtime is None:
        raise NotInitializedError("silofed is not initialised: call fed.init(party=..., config=...) first")
    return runtime.job
