"""Pickle-5 framing: large buffers travel out of band and are rebuilt in place."""

from __future__ import annotations

import numpy as np
import pytest

from proxy._serialization import dumps, iter_chunks, loads
from proxy.errors import UnpicklingRefusedError


def reassemble(data, buffers, chunk):
    """What the receiver does: concatenate chunks, then slice."""
    payload = bytearray().join(bytes(c) for c in iter_chunks([data, *buffers], chunk))
    view = memoryview(payload)
    out, offset = [], len(data)
    for b in buffers:
        out.append(view[offset : offset + b.nbytes])
        offset += b.nbytes
    return view[: len(data)], out


def test_numpy_array_goes_out_of_band_without_copy():
    arr = np.arange(1 << 20, dtype=np.float64)
    data, buffers = dumps({"w": arr, "meta": [1, "a"]})
    assert len(data) < 1024
    assert len(buffers) == 1 and buffers[0].nbytes == arr.nbytes
    assert np.shares_memory(np.frombuffer(buffers[0], dtype=np.float64), arr)


def test_round_trip_through_chunks():
    arrs = [np.random.default_rng(1).random((33, 7)), np.arange(10, dtype=np.int8)]
    data, buffers = dumps((arrs, "tail"))
    pickle_view, bufs = reassemble(data, buffers, chunk=4096)
    (back, tail) = loads(pickle_view, bufs)
    assert tail == "tail"
    for a, b in zip(arrs, back):
        np.testing.assert_array_equal(a, b)
        assert b.flags.writeable


def test_chunks_are_bounded():
    sizes = [len(c) for c in iter_chunks([b"x" * 10, bytes(25)], 8)]
    assert sizes == [8, 2, 8, 8, 8, 1]


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_restricted_loads_refuses_unlisted_globals():
    data, buffers = dumps(Evil())
    with pytest.raises(UnpicklingRefusedError, match="posix.system|os.system"):
        loads(data, buffers, allowed={"builtins": ["list"]})
    data, buffers = dumps([1, 2])
    assert loads(data, buffers, allowed={}) == [1, 2]
