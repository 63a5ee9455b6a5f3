"""FedObject: a handle to a value produced by a fed call at some party."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import ray

    from fed._hosts.value import LocalValue


class FedObject:
    """The result of a fed call, at every party.

    At the owner party it holds the task's result; at other parties it starts
    empty and, once needed, holds the receive posted for it (a
    ``fed._hosts.LocalValue`` either way).
    Its key (the call's sequence id, plus ``#i`` for
    the i-th of several returns) is the same at every party.
    """

    __slots__ = ("_owner", "_key", "_producer", "_value", "_sent_to")

    def __init__(self, owner: str, key: str, producer: str, value: Optional[LocalValue] = None):
        self._owner = owner
        self._key = key
        self._producer = producer
        self._value = value
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
        return None if self._value is None else self._value.object_ref()

    @property
    def producer(self) -> str:
        """Name of the call that produces this object."""
        return self._producer

    def __reduce__(self) -> Any:
        raise TypeError(
            f"FedObject {self._key} cannot be pickled: pass it directly as an argument of a fed call "
            "(anywhere inside lists, tuples or dicts) and silofed delivers its value"
        )

    def __repr__(self) -> str:
        return f"FedObject(key={self._key!r}, party={self._owner!r}, producer={self._producer!r})"
