"""Find FedObjects inside call arguments and turn them into values.

FedObjects may sit anywhere inside lists, tuples (including namedtuples) and
dicts. Top-level ones become ObjectRefs, which Ray resolves to values; a
container holding some is rebuilt by a small zero-CPU task so that the callee
receives plain values at every depth.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import ray

from fed._object import FedObject


def iter_fed_objects(tree: Any) -> Iterator[FedObject]:
    """Yield every FedObject inside ``tree``, depth first."""
    if isinstance(tree, FedObject):
        yield tree
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            yield from iter_fed_objects(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from iter_fed_objects(item)


def _map_leaves(tree: Any, is_leaf: Callable[[Any], bool], fn: Callable[[Any], Any]) -> Any:
    """A copy of ``tree`` (lists, tuples, namedtuples, dicts) with each leaf replaced by ``fn(leaf)``."""
    if is_leaf(tree):
        return fn(tree)
    if isinstance(tree, list):
        return [_map_leaves(x, is_leaf, fn) for x in tree]
    if isinstance(tree, tuple):
        items = [_map_leaves(x, is_leaf, fn) for x in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else type(tree)(items)
    if isinstance(tree, dict):
        out = {k: _map_leaves(v, is_leaf, fn) for k, v in tree.items()}
        return out if type(tree) is dict else type(tree)(out)
    return tree


class _Hole:
    """Placeholder for the i-th value in a container template."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _is_fed_object(x: Any) -> bool:
    return isinstance(x, FedObject)


def _is_hole(x: Any) -> bool:
    return isinstance(x, _Hole)


@ray.remote(num_cpus=0)
def _assemble(template: Any, *values: Any) -> Any:
    return _map_leaves(template, _is_hole, lambda hole: values[hole.index])


def _materialize_one(arg: Any, to_ref: Callable[[FedObject], Any]) -> Any:
    if isinstance(arg, FedObject):
        return to_ref(arg)
    if not isinstance(arg, (list, tuple, dict)) or next(iter_fed_objects(arg), None) is None:
        return arg
    refs: list[Any] = []

    def hole(obj: FedObject) -> _Hole:
        refs.append(to_ref(obj))
        return _Hole(len(refs) - 1)

    template = _map_leaves(arg, _is_fed_object, hole)
    return _assemble.remote(template, *refs)


def materialize(args: tuple, kwargs: dict, to_ref: Callable[[FedObject], Any]) -> tuple[list, dict]:
    """Arguments for a Ray call: every FedObject, at any depth, becomes its value.

    Args:
        to_ref: what Ray takes for a FedObject: its local ObjectRef (a result,
            a large received value) or a small received value itself.
    """
    return (
        [_materialize_one(a, to_ref) for a in args],
        {k: _materialize_one(v, to_ref) for k, v in kwargs.items()},
    )
