"""Pickle protocol 5 with out-of-band buffers, and restricted loading.

``dumps`` never copies large buffers (numpy arrays, bytes-like objects that
support PEP 574): they are returned as memoryviews over the original memory.
``loads`` rebuilds them in place from slices of the receive buffer.
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any, Iterable, Iterator, Mapping, Optional, Sequence

import cloudpickle

from proxy._allowlist import AmplificationRefused, guard
from proxy.errors import UnpicklingRefusedError


def dumps(obj: Any) -> tuple[bytes, list[memoryview]]:
    """Serialize ``obj``; return the pickle stream and its out-of-band buffers."""
    buffers: list[memoryview] = []

    def keep(buf: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(buf.raw())
        except BufferError:  # not contiguous: let pickle copy it in-band
            return True
        return False

    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=keep)
    return data, buffers


def iter_chunks(parts: Iterable[memoryview | bytes], chunk_bytes: int) -> Iterator[memoryview]:
    """Yield views of at most ``chunk_bytes`` covering ``parts`` in order."""
    for part in parts:
        view = memoryview(part).cast("B")
        for start in range(0, len(view), chunk_bytes):
            yield view[start : start + chunk_bytes]


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], buffers: Iterable[Any], allowed: Mapping[str, Sequence[str]]) -> None:
        super().__init__(file, buffers=buffers)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        names = self._allowed.get(module)
        # "*" admits a module's top-level names only: a dotted name could walk
        # attributes (e.g. f.__globals__) to reach anything.
        if names is not None and (name in names or ("*" in names and "." not in name)):
            return guard(module, name, super().find_class(module, name))
        raise UnpicklingRefusedError(
            f"refused to unpickle {module}.{name}: it is not on the allow-list, and unpickling it could run "
            f"code sent by a peer. If the sending party is trusted to send it, add it under "
            f"cross_silo_comm.serializing_allowed_list, e.g. {{{module!r}: [{name!r}]}} "
            f"(YAML: - \"{module}:{name}\"), or set cross_silo_comm.trust_peers: true to allow everything"
        )


def loads(
    data: memoryview | bytes,
    buffers: Sequence[memoryview],
    allowed: Optional[Mapping[str, Sequence[str]]] = None,
) -> Any:
    """Rebuild an object from ``dumps`` output.

    Args:
        data: the pickle stream.
        buffers: the out-of-band buffers, in order.
        allowed: ``{module: [names]}`` a payload may reference ("*" for every
            name in a module), or None to allow any global.

    Raises:
        UnpicklingRefusedError: the payload references a global not allowed.
    """
    if allowed is None:
        return pickle.loads(data, buffers=buffers)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), buffers, allowed).load()
    except AmplificationRefused as exc:
        raise UnpicklingRefusedError(f"refused a crafted payload: {exc}") from None
