"""The default allow-list of globals a received pickle may reference (REP 0020).

Unpickling calls whatever callable the stream names, so a party that could
name any global could run code at its peers (``os.system``, ``open``,
``subprocess.Popen``...). Received data may therefore only reference the
globals listed here: plain data types, and the reduce helpers numpy uses for
arrays, dtypes and scalars in numpy 1.x and 2.x (found by pickling with
protocol 5 and out-of-band buffers, see ``tests/unit/test_allowlist.py``),
plus silofed's own transport errors, which travel in place of a failed task's
result. User entries extend this list.
"""

from __future__ import annotations

import inspect
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, NoReturn, Optional, Sequence, Union

import proxy.errors as _errors

ANY = "*"


def _transport_errors() -> tuple[str, ...]:
    return tuple(sorted(
        name for name, obj in vars(_errors).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == _errors.__name__
    ))


_NUMPY_CORE = {
    "multiarray": ("_reconstruct", "scalar"),
    "numeric": ("_frombuffer",),
}

DEFAULT_ALLOWED: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "builtins": ("int", "float", "complex", "str", "bytes", "bytearray", "list", "tuple", "dict", "set",
                 "frozenset", "bool", "slice", "range", "Ellipsis", "NotImplemented"),
    "collections": ("OrderedDict", "defaultdict", "deque", "Counter"),
    "datetime": ("datetime", "date", "time", "timedelta", "timezone"),
    "decimal": ("Decimal",),
    "fractions": ("Fraction",),
    "uuid": ("UUID", "SafeUUID"),
    "numpy": ("ndarray", "dtype"),
    # numpy 2.x names its reduce helpers numpy._core.*, numpy 1.x numpy.core.*.
    **{f"numpy.{pkg}.{mod}": names for pkg in ("_core", "core") for mod, names in _NUMPY_CORE.items()},
    "proxy.errors": _transport_errors(),
})


Entries = Union[None, Mapping[str, Union[str, Sequence[str]]], Sequence[str]]


def parse_entries(entries: Entries, where: str = "cross_silo_comm.serializing_allowed_list") -> dict[str, tuple]:
    """Normalise user allow-list entries to ``{module: (names...)}``.

    Two forms are accepted:

    * RayFed's ``{module: [names]}`` (or ``{module: name}``, ``"*"`` for
      every name of the module);
    * a list of ``"module:name"`` or ``"module.name"`` strings (the last dot
      separates the name; use ``module:Outer.Inner`` for a nested class,
      ``module:*`` for every name).

    Raises:
        ValueError: an entry is malformed; the message names ``where``.
    """
    out: dict[str, list[str]] = {}
    if entries is None:
        return {}
    if isinstance(entries, Mapping):
        items: Iterable = entries.items()
    elif isinstance(entries, (list, tuple)):
        items = []
        for entry in entries:
            if not isinstance(entry, str):
                raise ValueError(f"{where}: entry {entry!r} must be a string 'module:name'")
            module, sep, name = entry.partition(":") if ":" in entry else entry.rpartition(".")
            if not sep or not module or not name:
                raise ValueError(f"{where}: entry {entry!r} must look like 'module:name' or 'module.name'")
            items.append((module, [name]))
    else:
        raise ValueError(f"{where}: must be a mapping {{module: [names]}} or a list of 'module:name' strings")
    for module, names in items:
        names = [names] if isinstance(names, str) else list(names)
        if not isinstance(module, str) or not module or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"{where}: entry {module!r}: {names!r} must map a module name to names")
        out.setdefault(module, []).extend(names)
    return {m: tuple(dict.fromkeys(n)) for m, n in out.items()}


def build_allowed(user: Entries = None, trust_peers: bool = False) -> Optional[dict[str, tuple]]:
    """The allow-list a receiver uses: the defaults extended by ``user``.

    Args:
        user: the user's entries (see :func:`parse_entries`).
        trust_peers: return None, i.e. unpickle anything: only for peers
            that are trusted to run code at this party.
    """
    if trust_peers:
        return None
    merged = {m: tuple(n) for m, n in DEFAULT_ALLOWED.items()}
    for module, names in parse_entries(user).items():
        merged[module] = tuple(dict.fromkeys(merged.get(module, ()) + names))
    return merged


# -- guarded constructors ------------------------------------------------------
#
# The allow-list stops code execution, but some allowed callables, called by a
# crafted stream, turn a few bytes into gigabytes or hours (bytes(10**10),
# list(range(10**10)), an empty numpy array of a huge shape, Fraction("1e999999999")).
# The pickles cloudpickle makes of real data never call them that way, so the
# unpickler hands out guarded versions that refuse such calls.

MAX_AMPLIFIED = 1 << 24  # elements or bytes a guarded constructor may create


class AmplificationRefused(Exception):
    """A guarded constructor was called with arguments real data never produce."""


def _refuse(what: str) -> NoReturn:
    raise AmplificationRefused(what)


def _guard_sized(cls: type) -> Callable[..., Any]:
    def make(*args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], int) and not isinstance(args[0], bool) and args[0] > MAX_AMPLIFIED:
            _refuse(f"{cls.__name__}({args[0]}) would allocate over {MAX_AMPLIFIED} bytes")
        return cls(*args, **kwargs)
    return make


def _guard_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_AMPLIFIED:
        _refuse(f"range of {len(r)} elements (limit {MAX_AMPLIFIED})")
    return r


def _guard_fraction(cls: type) -> Callable[..., Any]:
    def make(*args: Any) -> Any:
        if any(isinstance(a, str) and ("e" in a.lower() or len(a) > 4096) for a in args):
            _refuse("Fraction from a string with an exponent")
        return cls(*args)
    return make


class _NdarrayMarker:
    """Stands for numpy.ndarray in a received stream: numpy only names the class
    as the subtype for ``_reconstruct``; calling it would allocate any shape."""

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("numpy.ndarray(...) called directly")


_NDARRAY = _NdarrayMarker()


def _guard_reconstruct(fn: Callable[..., Any]) -> Callable[..., Any]:
    def make(subtype: Any, shape: Any, dtype: Any) -> Any:
        if subtype is _NDARRAY:
            import numpy
            subtype = numpy.ndarray
        size = 1
        for n in (shape if isinstance(shape, tuple) else (shape,)):
            size *= int(n)
        if size != 0:  # numpy pickles (0,) and sets the data with __setstate__
            _refuse(f"_reconstruct of a non-empty shape {shape!r}")
        return fn(subtype, shape, dtype)
    return make


def guard(module: str, name: str, obj: Any) -> Any:
    """The object the unpickler hands out for the allowed global ``module.name``."""
    if module == "builtins" and name in ("bytes", "bytearray"):
        return _guard_sized(obj)
    if module == "builtins" and name == "range":
        return _guard_range
    if module == "fractions" and name == "Fraction":
        return _guard_fraction(obj)
    if module == "numpy" and name == "ndarray":
        return _NDARRAY
    if module.startswith("numpy.") and name == "_reconstruct":
        return _guard_reconstruct(obj)
    return obj
