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


def test_fed_get_serializes_what_it_sends_before_the_program_can_change_it():
    import threading

    import numpy as np

    from fed._api import _pickled
    from proxy._serialization import loads

    weights = {"w": np.arange(4.0), "step": [1]}
    data, buffers = _pickled(weights)
    weights["w"] += 10  # the program updates its copy right after fed.get
    weights["step"].append(2)
    sent = loads(data, buffers)
    assert sent["w"].tolist() == [0.0, 1.0, 2.0, 3.0] and sent["step"] == [1]

    frozen = np.arange(1 << 16, dtype=np.uint8)
    frozen.flags.writeable = False  # as a large value comes from the object store
    _, (view,) = _pickled(frozen)
    assert np.shares_memory(np.frombuffer(view, np.uint8), frozen)  # not copied

    assert _pickled(threading.Lock()) is None  # unpicklable: the send reports why itself


def test_fed_get_of_one_peer_value_times_out_or_raises_what_the_receive_holds():
    """fed.get's wait for a single receive (_local_values' one-future path)."""
    import concurrent.futures

    from fed._api import _local_values
    from fed._object import FedObject

    obj = FedObject("bob", "7", "slow")
    pending = concurrent.futures.Future()
    with pytest.raises(fed.FedTimeoutError, match=r"timed out after 0.05 s .* 7 .*'slow' at party 'bob'"):
        _local_values([obj], [pending], 0.05)

    failed = concurrent.futures.Future()
    failed.set_exception(fed.FedTimeoutError("the receive's own timeout"))  # a TimeoutError, but not fed.get's
    with pytest.raises(fed.FedTimeoutError, match="the receive's own timeout"):
        _local_values([obj], [failed], 5)

    done = concurrent.futures.Future()
    done.set_result({"w": 1})
    assert _local_values([obj], [done], 0.05) == [{"w": 1}]
