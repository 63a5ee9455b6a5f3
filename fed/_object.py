"""FedObject: a handle to a value produced by a fed call at some party."""

from __future__ import annotations

import concurrent.futures
from typing import Any, Optional

import ray


class FedObject:
    """The result of a fed call, at every party.

    At the owner party it wraps the Ray ObjectRef of the task's result (or a
    Future of it while the call waits for inputs from other parties); at other
    parties it starts empty and, once needed, holds the receive posted for it.
    Its key (the call's sequence id, plus ``#i`` for
    the i-th of several returns) is the same at every party.
    """

    __slots__ = ("_owner", "_key", "_producer", "_ref", "_sent_to")

    def __init__(self, owner: str, key: str, producer: str, ref: Any = None):
        self._owner = owner
        self._key = key
        self._producer = producer
        self._ref = ref
        self._sent_to: set[str] = set()

    def get_party(self) -> str:
        """The party that produces (owns) this object."""
        return self._owner

    def get_fed_task_id(self) -> str:
        """The object's key, identical at every party."""
        return self._key

    def get_ray_object_ref(self) -> Optional[ray.ObjectRef]:
        """The local Ray ObjectRef: the result at the owner, the received value elsewhere (None if not needed yet).

        Blocks while the call still waits for inputs or the data is on its way.
        """
        ref = self._ref
        if isinstance(ref, concurrent.futures.Future):
            ref = ref.result()
            if not isinstance(ref, ray.ObjectRef):  # a small received value
                ref = ray.put(ref)
            self._ref = ref
        return ref

    @property
    def producer(self) -> str:
        """Name of the call that produces this object."""
        return self._producer

    def __reduce__(self):
        raise TypeError(
            f"FedObject {self._key} cannot be pickled: pass it directly as an argument of a fed call "
            "(anywhere inside lists, tuples or dicts) and silofed delivers its value"
        )

    def __repr__(self) -> str:
        return f"FedObject(key={self._key!r}, party={self._owner!r}, producer={self._producer!r})"
