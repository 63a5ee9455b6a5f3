"""silofed's exceptions. Every error silofed raises is a ``FedError``.

    FedError
     ├── ConfigError                 bad configuration or arguments to fed.init
     │    └── UnknownPartyError      a party name that is not in the job
     ├── UsageError                  a wrong command-line argument (``fed run``, ...)
     ├── NotInitializedError         fed API used before fed.init / after shutdown
     ├── FedTransportError           a message could not be delivered or was refused
     │    └── UntrustedPayloadError  received data names a type not on the allow-list
     ├── RemoteError                 a task failed at another party
     ├── PeerUnavailableError        a peer aborted or stopped answering
     ├── FedTimeoutError             a bounded wait ran out
     ├── ProgramDivergenceError      the parties run different programs
     └── InterruptedJobError         this party got SIGINT/SIGTERM (also a KeyboardInterrupt)

Errors raised inside the transport (``proxy.errors``) are translated to these
at one place, :func:`translate`.

Every FedError survives pickling (Ray and multiprocessing carry exceptions
that way) with its message and structured fields, whatever its constructor
takes: see :meth:`FedError.__reduce__`.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import proxy.errors as perr


def _rebuild(cls: type, args: tuple, state: dict[str, Any]) -> "FedError":
    """Recreate a pickled FedError without calling its constructor (see FedError.__reduce__)."""
    err = cls.__new__(cls, *args)
    err.args = args
    err.__dict__.update(state)
    return err


class FedError(Exception):
    """Root of every silofed error.

    Subclasses keep their structured fields as instance attributes; pickling
    carries the message (``args``), those attributes and any notes, and
    unpickling restores them without calling ``__init__`` (whose parameters
    differ from ``args``), so subclasses need no pickling code of their own.
    """

    def __reduce__(self) -> tuple:
        """Pickle as ``_rebuild(type, args, attributes)``: constructor-independent."""
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(FedError, ValueError):
    """The configuration or an argument is invalid; the message says which and how to fix it."""


class UnknownPartyError(ConfigError):
    """A party name that is not one of the job's parties.

    Attributes:
        party: the unknown name.
        known: the job's parties.
    """

    def __init__(self, party: str, known: Iterable[str], what: str = "party"):
        known = sorted(known)
        super().__init__(f"unknown {what} {party!r}: the job's parties are {known}; "
                         "use one of them or add it to the config")
        self.party = party
        self.known = known


class UsageError(FedError):
    """A command-line argument is wrong (``fed run``, ``fed demo``, ...).

    Attributes:
        problem: what is wrong.
        hint: what to do instead ("" if the problem says it).
    """

    def __init__(self, problem: str, hint: str = ""):
        super().__init__(f"{problem} ({hint})" if hint else problem)
        self.problem, self.hint = problem, hint


class NotInitializedError(FedError, RuntimeError):
    """The fed API was used before ``fed.init`` or after ``fed.shutdown``."""


class FedTransportError(FedError):
    """A message could not be delivered, or the receiving party refused it.

    Attributes:
        peer: the other party.
        key: the object key, if known.
        code: the gRPC status name, if any.
    """

    def __init__(self, message: str, peer: str = "", key: str = "", code: str = ""):
        super().__init__(message)
        self.peer, self.key, self.code = peer, key, code


class UntrustedPayloadError(FedTransportError):
    """Received data references a global that the allow-list does not permit."""


class RemoteError(FedError):
    """A task failed at another party; this arrived in place of its result.

    Attributes:
        origin: party where the task failed (kept across parties).
        producer: name of the failing call.
        exc_type: qualified name of the original exception type.
        detail: message and traceback, or None when redacted.
    """

    def __init__(self, origin: str, producer: str, exc_type: str, detail: Optional[str]):
        shown = detail if detail is not None else \
            "(details redacted; the origin party logged them; set cross_silo_comm.expose_error_trace to share them)"
        super().__init__(f"{exc_type} raised by {producer!r} at party {origin!r}: {shown}")
        self.origin, self.producer, self.exc_type, self.detail = origin, producer, exc_type, detail


class PeerUnavailableError(FedError):
    """A peer aborted the job or can no longer be reached.

    Attributes:
        peer: the party that failed.
    """

    def __init__(self, message: str, peer: str):
        super().__init__(message)
        self.peer = peer


class FedTimeoutError(FedError, TimeoutError):
    """A bounded wait ran out."""


class ProgramDivergenceError(FedError):
    """Two parties disagree on which call produced an object.

    Attributes:
        key: the object key.
        expected: the call this party's program expected.
        received: the call the sending party made.
    """

    def __init__(self, message: str, key: str = "", expected: str = "", received: str = ""):
        super().__init__(message)
        self.key, self.expected, self.received = key, expected, received


class InterruptedJobError(FedError, KeyboardInterrupt):
    """The party received SIGINT or SIGTERM: it is shutting down and tells its peers the job aborted.

    Also a ``KeyboardInterrupt``, so code that handles Ctrl-C handles it too.

    Attributes:
        signal: the signal's name, e.g. "SIGINT".
    """

    def __init__(self, signal: str, message: str = ""):
        super().__init__(message or (
            f"interrupted by {signal}: this party is shutting down and tells its peers the job aborted; "
            f"send {signal} again to exit at once"))
        self.signal = signal


def translate(exc: BaseException) -> Optional[FedError]:
    """The FedError for a transport failure found in ``exc``'s chain, else None."""
    for e in perr.iter_causes(exc):
        if isinstance(e, FedError):
            return e
        if isinstance(e, perr.RemoteFailure):
            return RemoteError(e.origin, e.producer, e.exc_type, e.detail)
        if isinstance(e, perr.DivergedProducerError):
            return ProgramDivergenceError(str(e), e.key, e.expected, e.received)
        if isinstance(e, perr.PeerFailure):
            return PeerUnavailableError(str(e), e.peer)
        if isinstance(e, perr.UnpicklingRefusedError):
            return UntrustedPayloadError(str(e), e.peer, e.key, e.code)
        if isinstance(e, perr.TransportError):
            return FedTransportError(str(e), e.peer, e.key, e.code)
    return None
