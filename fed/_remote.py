"""``fed.remote``: federated functions, actor classes, handles and methods.

``.party(name)`` and ``.options(...)`` return new objects and never change the
one they are called on, so a decorated function can be bound to several
parties at once.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional, Union

import ray

from fed._deferred import Future, Lane
from fed._runtime import current_job


class _RayCache:
    """The ``ray.remote`` wrapper of a function or class, made once and shared by all bound copies."""

    __slots__ = ("target", "_remote")

    def __init__(self, target: Any):
        self.target = target
        self._remote: Any = None

    def get(self) -> Any:
        """The ``ray.remote`` wrapper, made at the first call."""
        if self._remote is None:
            self._remote = ray.remote(self.target)
        return self._remote


def _num_returns(options: dict) -> int:
    return options.get("num_returns", 1)


class FedRemoteFunction:
    """A function decorated with ``@fed.remote``; bind with ``.party()``, call with ``.remote()``."""

    def __init__(self, func: Callable, options: dict, party: Optional[str] = None, cache: Optional[_RayCache] = None):
        self._func = func
        self._options = dict(options)
        self._party = party
        self._cache = cache or _RayCache(func)
        self.__name__ = getattr(func, "__name__", "function")
        self.__doc__ = getattr(func, "__doc__", None)

    def party(self, party: str) -> "FedRemoteFunction":
        """A copy bound to ``party``, which is where it runs."""
        return FedRemoteFunction(self._func, self._options, party, self._cache)

    def options(self, **options: Any) -> "FedRemoteFunction":
        """A copy with Ray task options (num_returns, num_cpus, resources, max_retries, ...)."""
        return FedRemoteFunction(self._func, {**self._options, **options}, self._party, self._cache)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Run at the bound party. Returns FedObject(s); never blocks on data."""
        job = current_job()
        producer = self._func.__qualname__
        party = job.check_party(self._party, producer)
        options = self._options

        def submit(a: list, kw: dict) -> Any:
            fn = self._cache.get()
            return (fn.options(**options) if options else fn).remote(*a, **kw)

        return job.call(party, producer, _num_returns(options), submit, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.__name__} is a fed remote function: call "
                        f"{self.__name__}.party('name').remote(...) instead of calling it directly")


class FedRemoteClass:
    """A class decorated with ``@fed.remote``; ``.party(p).remote(...)`` creates the actor at ``p``."""

    def __init__(self, cls: type, options: dict, party: Optional[str] = None, cache: Optional[_RayCache] = None):
        self._cls = cls
        self._options = dict(options)
        self._party = party
        self._cache = cache or _RayCache(cls)
        self.__name__ = cls.__name__
        self.__doc__ = cls.__doc__

    def party(self, party: str) -> "FedRemoteClass":
        """A copy bound to ``party``, where the actor will live."""
        return FedRemoteClass(self._cls, self._options, party, self._cache)

    def options(self, **options: Any) -> "FedRemoteClass":
        """A copy with Ray actor options (num_cpus, resources, max_concurrency, ...)."""
        return FedRemoteClass(self._cls, {**self._options, **options}, self._party, self._cache)

    def remote(self, *args: Any, **kwargs: Any) -> "FedActorHandle":
        """Create the actor at the bound party; returns a handle usable at every party."""
        job = current_job()
        party = job.check_party(self._party, self._cls.__qualname__)
        options = self._options

        def submit(a: list, kw: dict) -> Any:
            cls = self._cache.get()
            return (cls.options(**options) if options else cls).remote(*a, **kw)

        lane = job.new_lane()
        return FedActorHandle(self._cls, party, job.create_actor(party, submit, args, kwargs, lane), lane)


class FedActorHandle:
    """An actor living at one party; ``handle.method.remote(...)`` runs there."""

    def __init__(self, cls: type, party: str, ray_handle: Union[None, ray.actor.ActorHandle, Future], lane: Lane):
        self._cls = cls
        self._party = party
        self._ray_handle = ray_handle  # a Future while the creation waits for its inputs
        self._lane = lane  # calls to the actor, in program order

    def _resolved_handle(self) -> ray.actor.ActorHandle:
        """The Ray handle; blocks while the creation waits for inputs, raises why the creation failed."""
        handle = self._ray_handle
        resolved = handle.result() if isinstance(handle, Future) else handle
        assert resolved is not None, "only the actor's own party submits calls to it"
        return resolved

    def get_party(self) -> str:
        """The party where the actor lives."""
        return self._party

    def __getattr__(self, name: str) -> "FedActorMethod":
        if name.startswith("__") or not callable(getattr(self._cls, name, None)):
            raise AttributeError(f"actor class {self._cls.__qualname__} has no method {name!r}")
        method = FedActorMethod(self, name, {})
        setattr(self, name, method)  # later lookups find it without coming here
        return method

    def __repr__(self) -> str:
        return f"FedActorHandle({self._cls.__qualname__} at {self._party!r})"


class FedActorMethod:
    """A method of a federated actor; ``.options(num_returns=k)`` then ``.remote(...)``."""

    def __init__(self, handle: FedActorHandle, name: str, options: dict):
        self._handle = handle
        self._name = name
        self._options = options
        self._producer = f"{handle._cls.__qualname__}.{name}"

    def options(self, **options: Any) -> "FedActorMethod":
        """A copy with Ray method options (num_returns, ...)."""
        return FedActorMethod(self._handle, self._name, {**self._options, **options})

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method at the actor's party. Returns FedObject(s)."""
        job = current_job()
        handle = self._handle
        options = self._options

        def submit(a: list, kw: dict) -> Any:
            method = getattr(handle._resolved_handle(), self._name)
            return (method.options(**options) if options else method).remote(*a, **kw)

        return job.call(handle._party, self._producer, _num_returns(options), submit, args, kwargs, handle._lane)


def remote(*args: Any, **kwargs: Any) -> Any:
    """Make a function or class federated: ``@fed.remote`` or ``@fed.remote(**ray_options)``.

    Returns:
        a FedRemoteFunction or FedRemoteClass (or, with options, a decorator
        producing one).
    """
    def make(target: Any) -> Any:
        if inspect.isclass(target):
            return FedRemoteClass(target, kwargs)
        if callable(target):
            return FedRemoteFunction(target, kwargs)
        raise TypeError(f"fed.remote decorates functions and classes, not {type(target).__name__}")

    if len(args) == 1 and not kwargs and callable(args[0]):
        return make(args[0])
    if args:
        raise TypeError("use @fed.remote or @fed.remote(num_cpus=..., ...) with keyword options only")
    return make
