"""The error tree: every FedError survives pickling, is drawn in fed/_errors.py's docstring and exported."""

from __future__ import annotations

import inspect
import pickle
import re

import cloudpickle
import pytest

import fed
import fed._cli.commands  # noqa: F401  (defines or re-exports FedErrors of the command line)
import fed._errors
import fed._signals  # noqa: F401  (defines or re-exports FedErrors of the process hooks)

# Sample values for constructor parameters whose type matters; every other
# required parameter gets a distinct string.
_SAMPLES = {"known": ["alice", "bob"], "peers": ["bob", "carol"]}


def _all_fed_errors() -> list[type]:
    """Every FedError subclass loaded, found by walking the tree (new ones are covered automatically)."""
    found, todo = [], [fed.FedError]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def _instance(cls: type) -> BaseException:
    """``cls`` built with every parameter given (required and optional), each a distinct value."""
    params = [p for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"]
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not named:  # Exception's own constructor: a message
        return cls(f"<message of {cls.__name__}>")
    return cls(**{p.name: _SAMPLES.get(p.name, f"<{p.name} of {cls.__name__}>") for p in named})


def _fields(err: BaseException) -> dict:
    return dict(vars(err))


@pytest.mark.parametrize("cls", _all_fed_errors(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("dumps,loads", [(pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)],
                         ids=["pickle", "cloudpickle"])
def test_every_fed_error_round_trips_through_pickle_keeping_message_and_fields(cls, dumps, loads):
    err = _instance(cls)
    err.add_note("a note added on the way")
    copy = loads(dumps(err))
    assert type(copy) is cls
    assert str(copy) == str(err) and copy.args == err.args
    assert _fields(copy) == _fields(err)
    assert getattr(copy, "__notes__", None) == ["a note added on the way"]
    with pytest.raises(cls):  # still raisable and caught as itself
        raise copy


def test_structured_fields_survive_pickling():
    """Spot checks with realistic values, so a regression names the field that got lost."""
    cases = [
        (fed.UnknownPartyError("dave", {"bob", "alice"}), {"party": "dave", "known": ["alice", "bob"]}),
        (fed.RemoteError("alice", "step", "ValueError", None), {"origin": "alice", "producer": "step",
                                                                "exc_type": "ValueError", "detail": None}),
        (fed.PeerUnavailableError("bob aborted", "bob"), {"peer": "bob"}),
        (fed.UntrustedPayloadError("refused os.system", "bob", "7", "PERMISSION_DENIED"),
         {"peer": "bob", "key": "7", "code": "PERMISSION_DENIED"}),
        (fed.ProgramDivergenceError("diverged", "3", "f", "g"), {"key": "3", "expected": "f", "received": "g"}),
    ]
    for err, fields in cases:
        copy = pickle.loads(cloudpickle.dumps(err))
        assert str(copy) == str(err)
        for name, value in fields.items():
            assert getattr(copy, name) == value, (type(err).__name__, name)
    assert "redacted" in str(pickle.loads(pickle.dumps(cases[1][0])))


def _drawn_tree() -> dict[str, str]:
    """``{class name: parent name}`` as drawn in fed/_errors.py's docstring."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in fed._errors.__doc__.splitlines():
        m = re.match(r"^(\s*(?:[│ ]\s*)*)(?:[├└]── )?([A-Z]\w*Error)\b", line)
        if not m:
            continue
        depth = len(m.group(1))
        name = m.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else ""
        stack.append((depth, name))
    return parents


def test_every_fed_error_is_drawn_in_the_tree_under_its_parent_and_exported():
    drawn = _drawn_tree()
    for cls in _all_fed_errors():
        name = cls.__name__
        assert name in drawn, f"{name} is missing from the tree in fed/_errors.py's docstring"
        fed_parents = [b.__name__ for b in cls.__bases__ if issubclass(b, fed.FedError)]
        assert drawn[name] == (fed_parents[0] if fed_parents else ""), name
        assert cls.__module__ == "fed._errors", f"{name} is defined outside fed/_errors.py"
        assert name in fed.__all__ and getattr(fed, name) is cls, f"{name} is not exported from fed"
    assert set(drawn) == {c.__name__ for c in _all_fed_errors()}  # nothing drawn that does not exist


def test_old_import_locations_still_work():
    from fed._cli.commands import UsageError
    from fed._signals import InterruptedJobError

    assert UsageError is fed.UsageError and InterruptedJobError is fed.InterruptedJobError
    assert issubclass(fed.InterruptedJobError, KeyboardInterrupt)  # unwinds the program like Ctrl-C


def test_new_errors_say_what_happened_and_what_to_do():
    err = fed.InterruptedJobError("SIGINT")
    assert err.signal == "SIGINT" and "SIGINT" in str(err) and "again" in str(err)
    err = fed.UsageError("script 'x.py' not found", "give the path of a Python file")
    assert str(err) == "script 'x.py' not found (give the path of a Python file)"
    assert err.problem == "script 'x.py' not found" and err.hint == "give the path of a Python file"
