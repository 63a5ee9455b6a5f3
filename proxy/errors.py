"""Exceptions raised by the transport.

``fed`` translates each of these into its own ``fed.FedError`` subclass; the
transport keeps its own types so that it never imports ``fed``.

    Exception
     ├── TransportError          a message could not be delivered or was refused
     │    └── UnpicklingRefusedError   payload names a global not on the allow-list
     ├── DivergedProducerError   a message's producer differs from the expected one
     ├── RemoteFailure           a task failed at another party; sent instead of data
     └── PeerFailure             a peer aborted the job or became unreachable
"""

from __future__ import annotations

import sys
from typing import Iterator, Optional


class TransportError(Exception):
    """A message could not be delivered, or the receiver refused it.

    Attributes:
        peer: the other party involved.
        key: object key of the message, if known.
        code: gRPC status code name, if the failure came from gRPC.
    """

    def __init__(self, message: str, peer: str = "", key: str = "", code: str = ""):
        super().__init__(message)
        self.peer = peer
        self.key = key
        self.code = code

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.peer, self.key, self.code))


class UnpicklingRefusedError(TransportError):
    """A received payload references a global that is not allowed."""


class DivergedProducerError(Exception):
    """The parties disagree about which call produced an object.

    Raised when the producer named in a message differs from the one the
    receiving party's program expects for the same object key: the parties are
    not running the same program, or not in the same order.
    """

    def __init__(self, key: str, src: str, expected: str, received: str):
        super().__init__(
            f"object {key} from party {src!r}: this party's program expects it to be "
            f"produced by {expected!r}, but {src!r} produced it with {received!r}. "
            "Every party must run the same program and make fed calls in the same order."
        )
        self.key = key
        self.src = src
        self.expected = expected
        self.received = received

    def __reduce__(self) -> tuple:
        return (type(self), (self.key, self.src, self.expected, self.received))


class RemoteFailure(Exception):
    """A task failed at ``origin``; this error travelled instead of its result.

    Attributes:
        origin: party where the task failed.
        producer: name of the failing call.
        exc_type: qualified name of the original exception type.
        detail: original message and traceback, or None when redacted.
    """

    def __init__(self, origin: str, producer: str, exc_type: str, detail: Optional[str]):
        shown = detail if detail is not None else "(message redacted; set cross_silo_comm.expose_error_trace to see it)"
        super().__init__(f"{exc_type} in {producer!r} at party {origin!r}: {shown}")
        self.origin = origin
        self.producer = producer
        self.exc_type = exc_type
        self.detail = detail

    def __reduce__(self) -> tuple:
        return (type(self), (self.origin, self.producer, self.exc_type, self.detail))


class PeerFailure(Exception):
    """A peer aborted the job or can no longer be reached.

    Attributes:
        peer: the party that failed.
        cause: why, in words.
    """

    def __init__(self, peer: str, cause: str):
        super().__init__(f"party {peer!r} failed: {cause}")
        self.peer = peer
        self.cause = cause

    def __reduce__(self) -> tuple:
        return (type(self), (self.peer, self.cause))


def iter_causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was caused by, looking through Ray's task-error wrappers.

    A ``RayTaskError`` also subclasses its cause's type without carrying its
    fields, so the wrapper itself is skipped and its ``cause`` visited instead.
    """
    ray_exceptions = sys.modules.get("ray.exceptions")  # not imported: there is no Ray error to look through
    task_error = getattr(ray_exceptions, "RayTaskError", None)
    seen: set[int] = set()
    stack: list[Optional[BaseException]] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if task_error is not None and isinstance(e, task_error):
            stack.append(e.cause)
            continue
        yield e
        stack.extend([e.__context__, e.__cause__])
