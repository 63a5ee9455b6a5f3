"""The public surface: exports, error tree, decorator behaviour without Ray."""

from __future__ import annotations

import pytest

import fed
import proxy.errors as perr
from fed._errors import translate


def test_exports_are_exactly_the_public_api():
    expected = {
        "init", "remote", "get", "kill", "shutdown", "stats", "timeline",
        "FedObject", "FedActorHandle", "FedRemoteClass", "FedRemoteFunction",
        "FedError", "ConfigError", "UnknownPartyError", "NotInitializedError", "FedTransportError",
        "UntrustedPayloadError", "RemoteError", "PeerUnavailableError", "FedTimeoutError",
        "ProgramDivergenceError", "InterruptedJobError", "UsageError",
    }
    assert set(fed.__all__) == expected
    for name in fed.__all__:
        assert getattr(fed, name) is not None


def test_every_error_is_a_fed_error():
    for name in fed.__all__:
        obj = getattr(fed, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, fed.FedError), name


def test_party_returns_a_new_object_and_does_not_mutate():
    @fed.remote
    def f():
        return 1

    a = f.party("alice")
    b = f.party("bob")
    assert (a._party, b._party, f._party) == ("alice", "bob", None)
    assert a._cache is b._cache  # one ray.remote wrapper shared by all bound copies


def test_calls_before_init_and_direct_calls_are_clear_errors():
    @fed.remote
    def f():
        return 1

    with pytest.raises(fed.NotInitializedError, match="fed.init"):
        f.party("alice").remote()
    with pytest.raises(TypeError, match="party"):
        f()


def test_transport_errors_translate_keeping_origin():
    err = translate(perr.RemoteFailure("alice", "step", "ValueError", None))
    assert isinstance(err, fed.RemoteError) and err.origin == "alice" and "redacted" in str(err)
    err = translate(perr.DivergedProducerError("3", "bob", "f", "g"))
    assert isinstance(err, fed.ProgramDivergenceError) and "'f'" in str(err) and "'g'" in str(err)
    err = translate(perr.UnpicklingRefusedError("refused os.system", peer="bob"))
    assert isinstance(err, fed.UntrustedPayloadError)
    assert translate(ValueError("x")) is None


def test_fed_object_cannot_be_pickled():
    import pickle

    with pytest.raises(TypeError, match="argument of a fed call"):
        pickle.dumps(fed.FedObject("alice", "1", "f"))
