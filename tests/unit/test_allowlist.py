"""Safe deserialization: the default allow-list and how users extend it."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import os
import uuid

import numpy as np
import pytest

from fed import ConfigError
from fed._config import CrossSiloComm, allowed_globals
from proxy import errors as perr
from proxy._allowlist import DEFAULT_ALLOWED, build_allowed, parse_entries
from proxy._serialization import dumps, loads

Point = collections.namedtuple("Point", "x y")


class Opener:
    """Unpickling this would create a file: the attack the allow-list stops."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class Shell:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class Custom:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return isinstance(other, Custom) and other.v == self.v


_DEFAULT = object()


def _roundtrip(value, allowed=_DEFAULT):
    data, buffers = dumps(value)
    return loads(data, [memoryview(bytearray(b)) for b in buffers], build_allowed() if allowed is _DEFAULT else allowed)


PLAIN = [
    0, -(1 << 100), 1.5, float("inf"), 2 + 3j, "text", b"bytes", bytearray(b"ba" * 1000), None, True,
    [1, [2, [3]]], (1, (2,)), {"a": {"b": [1, 2]}}, {1, 2}, frozenset({3}), slice(1, 9, 2), range(5), ...,
    collections.OrderedDict(a=1, b=2), collections.defaultdict(list, a=[1]), collections.deque([1, 2], maxlen=5),
    collections.Counter("hello"),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), datetime.date(2024, 1, 2),
    datetime.time(1, 2), datetime.timedelta(days=3), datetime.timezone(datetime.timedelta(hours=2)),
    decimal.Decimal("1.10"), fractions.Fraction(1, 3), uuid.uuid4(), uuid.uuid1(),
]


@pytest.mark.parametrize("value", PLAIN, ids=lambda v: type(v).__name__)
def test_plain_data_pickled_by_cloudpickle_passes_the_default_list(value):
    assert _roundtrip(value) == value


NUMPY = [
    np.arange(1000, dtype=np.float64), np.arange(12).reshape(3, 4).T, np.array(["a", "bc"]),
    np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]), np.array([1, None, "x"], dtype=object),
    np.array(["2024-01-01"], dtype="datetime64[D]"), np.array([1 + 2j]), np.float32(1.5), np.int64(7),
    np.bool_(True), np.datetime64("2024-01-01"), np.dtype("f8"), np.dtype([("a", "i4")]), np.zeros((0, 3)),
]


@pytest.mark.parametrize("value", NUMPY, ids=lambda v: f"{type(v).__name__}-{getattr(v, 'dtype', v)}")
def test_numpy_arrays_dtypes_and_scalars_pass_the_default_list(value):
    got = _roundtrip(value)
    if isinstance(value, np.ndarray):
        assert got.dtype == value.dtype and got.shape == value.shape
        assert (got == value).all()
    else:
        assert got == value and type(got) is type(value)


def test_nested_numpy_in_containers_uses_out_of_band_buffers():
    value = {"w": [np.ones(100_000), np.arange(10)], "meta": ("x", 1)}
    data, buffers = dumps(value)
    assert len(buffers) == 2 and len(data) < 1000
    got = _roundtrip(value)
    assert (got["w"][0] == 1).all() and got["meta"] == ("x", 1)


def test_numpy_1x_and_2x_reduce_helpers_are_listed():
    for pkg in ("numpy.core", "numpy._core"):
        assert "_reconstruct" in DEFAULT_ALLOWED[f"{pkg}.multiarray"]
        assert "scalar" in DEFAULT_ALLOWED[f"{pkg}.multiarray"]
        assert "_frombuffer" in DEFAULT_ALLOWED[f"{pkg}.numeric"]


@pytest.mark.parametrize("error", [
    perr.RemoteFailure("alice", "f", "builtins.ValueError", None),
    perr.RemoteFailure("alice", "f", "builtins.ValueError", "Traceback ..."),
    perr.TransportError("x", peer="bob", key="1", code="UNAVAILABLE"),
    perr.UnpicklingRefusedError("y", peer="bob"),
    perr.DivergedProducerError("3", "bob", "f", "g"),
    perr.PeerFailure("bob", "it aborted"),
], ids=lambda e: type(e).__name__)
def test_transport_errors_travel_in_place_of_data(error):
    got = _roundtrip(error)
    assert type(got) is type(error) and str(got) == str(error)


def test_every_transport_error_class_is_allowed():
    classes = {n for n, o in vars(perr).items() if isinstance(o, type) and issubclass(o, BaseException)
               and o.__module__ == "proxy.errors"}
    assert classes and classes <= set(DEFAULT_ALLOWED["proxy.errors"])


def test_a_payload_that_would_write_a_file_is_refused_and_does_not_run(tmp_path):
    target = tmp_path / "pwned"
    with pytest.raises(perr.UnpicklingRefusedError) as info:
        _roundtrip({"x": [Opener(str(target))]})
    assert not target.exists()
    msg = str(info.value)
    assert "io.open" in msg and "cross_silo_comm.serializing_allowed_list" in msg and "trust_peers" in msg


def test_os_system_and_code_by_value_are_refused():
    with pytest.raises(perr.UnpicklingRefusedError, match=r"(posix|os)\.system"):
        _roundtrip(Shell())
    with pytest.raises(perr.UnpicklingRefusedError, match="cloudpickle"):
        _roundtrip(lambda: 1)


def test_user_classes_and_namedtuples_need_an_entry():
    with pytest.raises(perr.UnpicklingRefusedError, match=f"{__name__}.Custom"):
        _roundtrip(Custom(1))
    with pytest.raises(perr.UnpicklingRefusedError, match=f"{__name__}.Point"):
        _roundtrip(Point(1, 2))
    allowed = build_allowed({__name__: ["Custom", "Point"]})
    assert _roundtrip([Custom(1), Point(1, 2)], allowed) == [Custom(1), Point(1, 2)]
    assert "builtins" in allowed and "int" in allowed["builtins"]  # defaults kept


def test_wildcard_admits_top_level_names_but_not_attribute_walks():
    allowed = build_allowed({__name__: "*"})
    assert _roundtrip(Custom(2), allowed) == Custom(2)
    # A protocol-4 STACK_GLOBAL with a dotted name would walk attributes.
    crafted = (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00" + b"\x8c" + bytes([len(__name__)]) + __name__.encode()
               + b"\x8c\x14Custom.__init__.__gl" + b"\x93.")
    with pytest.raises(perr.UnpicklingRefusedError, match="Custom.__init__"):
        loads(crafted, [], allowed)


def test_trust_peers_allows_everything(tmp_path):
    assert build_allowed(trust_peers=True) is None
    assert _roundtrip(Custom(3), build_allowed(trust_peers=True)) == Custom(3)


def test_entry_forms():
    assert parse_entries({"m": "A", "n": ["B", "C"]}) == {"m": ("A",), "n": ("B", "C")}
    assert parse_entries(["m:A", "pkg.mod.B", "pkg.mod:Outer.Inner", "m:*"]) == {
        "m": ("A", "*"), "pkg.mod": ("B", "Outer.Inner")}
    for bad in (["nodot"], [3], "m:A", {"m": [""]}):
        with pytest.raises(ValueError):
            parse_entries(bad)


def test_config_key_extends_defaults_and_rejects_malformed_entries():
    comm = CrossSiloComm(serializing_allowed_list={"mymod": ["A"]})
    allowed = allowed_globals(comm)
    assert allowed["mymod"] == ("A",) and "ndarray" in allowed["numpy"]
    assert allowed_globals(CrossSiloComm(serializing_allowed_list=["mymod:B"]))["mymod"] == ("B",)
    assert allowed_globals(CrossSiloComm()) == build_allowed()
    assert allowed_globals(CrossSiloComm(trust_peers=True)) is None
    with pytest.raises(Exception, match="module:name"):
        CrossSiloComm(serializing_allowed_list=["nodot"])


def test_yaml_forms_load(tmp_path):
    from fed._config import load_job_config
    path = tmp_path / "c.yaml"
    path.write_text("parties: {alice: {address: '127.0.0.1:1'}}\n"
                    "cross_silo_comm:\n  serializing_allowed_list:\n    - mymod:A\n    - other.mod.B\n")
    cfg = load_job_config(party="alice", config=str(path))
    assert allowed_globals(cfg.comm)["other.mod"] == ("B",)
    path.write_text("parties: {alice: {address: '127.0.0.1:1'}}\n"
                    "cross_silo_comm: {serializing_allowed_list: [42]}\n")
    with pytest.raises(ConfigError, match="serializing_allowed_list"):
        load_job_config(party="alice", config=str(path))


class _Crafted:
    """Pickles as an arbitrary call, like a hand-made hostile stream."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _np_reconstruct():
    from numpy._core.multiarray import _reconstruct
    return _reconstruct


@pytest.mark.parametrize("call", [
    (bytes, (1 << 40,)),
    (bytearray, (1 << 40,)),
    (list, (range(1 << 40),)),
    (np.ndarray, ((1 << 20, 1 << 20),)),
    (_np_reconstruct(), (np.ndarray, (1 << 40,), b"b")),
    (fractions.Fraction, ("1e999999999",)),
], ids=["bytes", "bytearray", "list-range", "ndarray", "_reconstruct", "Fraction"])
def test_allowed_constructors_refuse_amplifying_calls(call):
    with pytest.raises(perr.UnpicklingRefusedError, match="crafted payload"):
        _roundtrip(_Crafted(*call))


def test_guarded_constructors_still_rebuild_real_data():
    assert _roundtrip([range(10), bytes(3), fractions.Fraction(22, 7)]) == [range(10), bytes(3), fractions.Fraction(22, 7)]
    arr = np.array([{"a": 1}, None, 3.5], dtype=object)
    got = _roundtrip(arr)
    assert got.dtype == object and list(got) == list(arr)
