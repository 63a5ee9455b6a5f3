"""Security across parties: mutual TLS bound to party names, safe deserialization, secrets stay home.

One three-party run over mutual TLS, alice and bob certified by one
organisation's CA and carol by another's (every party trusts a bundle of both).
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys

import numpy as np
import pytest

import fed
from fed._cli.certs import write_certs_for_addresses
from fed._errors import translate
from proxy._config import TlsFiles, TransportConfig
from proxy._sender import SenderProxy
from proxy.errors import TransportError
from tests.support import leave, local_addresses, placed, run_parties, start_ray

pytestmark = pytest.mark.parties


class Custom:
    """A user type: refused by default, accepted where allowed explicitly."""

    def __init__(self, v):
        self.v = v


class Evil:
    """Stands for a hostile alice: when her sender proxy pickles this for another
    party, the stream says "call open(marker, 'w')". Inside alice (Ray's own
    serialization) it stays an Evil, so only a receiving party could run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.endswith(os.path.join("proxy", "_serialization.py")):
                return (open, (self.marker, "w"))
            frame = frame.f_back
        return (Evil, (self.marker,))


@fed.remote
def make_data(secret):
    return {"secret": secret, "arr": np.arange(1000, dtype=np.float32),
            "nested": [(1, {"s": {1, 2}, "f": frozenset([3])}), collections.OrderedDict(a=b"x"), 2.5 + 1j, None]}


@fed.remote
def summarize(data):
    assert data["nested"] == [(1, {"s": {1, 2}, "f": frozenset([3])}), collections.OrderedDict(a=b"x"), 2.5 + 1j, None]
    return float(data["arr"].sum()), len(data["secret"])


@fed.remote
def make(kind, arg):
    return Evil(arg) if kind == "evil" else Custom(arg)


@fed.remote
def fail():
    raise ValueError("task failed on purpose")


@fed.remote
def token():
    return "done"


def _outcome(fn):
    try:
        value = fn()
    except Exception as exc:  # at the origin a failed task raises Ray's error, not a FedError
        return type(exc).__name__, str(exc)
    return "ok", value


async def _spoof(tls: TlsFiles, alice: str):
    """carol, holding a valid certificate for carol, pushes and pings as bob."""
    cfg = TransportConfig(job="sec", party="bob", listen_address="127.0.0.1:1", peers={"alice": alice},
                          tls=tls, connect_timeout_s=5)
    sender = SenderProxy(cfg)

    async def value():
        return "forged"
    try:
        await sender.send("alice", "0", "make_data", [value()])
    except TransportError as exc:
        error = translate(exc)
    else:
        error = None
    ping = await sender.ping("alice")
    await sender.stop()
    return error, ping


def tls_party(party, addresses, tls, marker, secret):
    start_ray()
    allowed = {__name__: ["Custom"]} if party == "carol" else None
    fed.init(addresses=addresses, party=party, tls_config=tls[party], job_name="sec", logging_level="debug",
             config=placed({"cross_silo_comm": {"serializing_allowed_list": allowed, "timeout_ms": 20000}}))
    out = {}
    data = make_data.party("alice").remote(secret)
    out["plain"] = fed.get([summarize.party("bob").remote(data), summarize.party("carol").remote(data)])
    out["evil"] = _outcome(lambda: type(fed.get(make.party("alice").remote("evil", marker))).__name__)
    out["custom"] = _outcome(lambda: fed.get(make.party("alice").remote("custom", 42)).v)
    out["failed"] = _outcome(lambda: fed.get(fail.party("alice").remote()))
    if party == "carol":
        error, ping = asyncio.run(_spoof(TlsFiles(**tls["carol"]), addresses["alice"]))
        out["spoof"] = (type(error).__name__, str(error), getattr(error, "code", None), ping)
    out["token"] = fed.get(token.party("carol").remote())
    out["stats"] = fed.stats()
    leave()
    return out


def test_mutual_tls_allow_list_and_secrets(tmp_path, placement):
    addresses = local_addresses(["alice", "bob", "carol"])
    org1 = write_certs_for_addresses({p: addresses[p] for p in ("alice", "bob")}, tmp_path / "org1", ca_name="org1")
    org2 = write_certs_for_addresses({"carol": addresses["carol"]}, tmp_path / "org2", ca_name="org2")
    bundle = tmp_path / "peers-ca.crt"
    bundle.write_bytes(open(org1["ca_cert"], "rb").read() + open(org2["ca_cert"], "rb").read())
    tls = {p: {"ca_cert": str(bundle), **(org2 if p == "carol" else org1)["parties"][p]} for p in addresses}
    marker = tmp_path / "pwned"
    secret = "SECRET-PAYLOAD-7f3a9c"

    run = run_parties(tls_party, ("alice", "bob", "carol"), addresses=addresses, timeout=240, placement=placement,
                      args={"tls": tls, "marker": str(marker), "secret": secret})

    for p in ("alice", "bob", "carol"):
        out = run.value(p)
        assert out["plain"] == [(499500.0, len(secret))] * 2, p
        assert out["token"] == "done"
        if p == "alice":
            assert out["evil"] == ("ok", "Evil")
            assert out["custom"][0] == "ok"
        else:
            kind, msg = out["evil"]
            assert kind == "UntrustedPayloadError", (p, out["evil"])
            assert "io.open" in msg and "cross_silo_comm.serializing_allowed_list" in msg and "'alice'" in msg
            kind, msg = out["failed"]
            assert kind == "RemoteError" and "ValueError" in msg and "'alice'" in msg, (p, out["failed"])
    assert not marker.exists(), "a receiving party ran code sent by alice"
    assert run.value("carol")["custom"] == ("ok", 42)  # carol allows Custom explicitly
    kind, msg = run.value("bob")["custom"]
    assert kind == "UntrustedPayloadError" and f"{__name__}.Custom" in msg

    kind, msg, code, ping = run.value("carol")["spoof"]
    assert kind == "FedTransportError" and code == "PERMISSION_DENIED"
    assert "claims to come from party 'bob'" in msg and "identifies 'carol'" in msg
    assert ping.startswith("PERMISSION_DENIED")
    received = run.value("alice")["stats"]["received"]
    assert received["rejected"] == {"identity_mismatch": 2}

    for p, result in run.parties.items():
        assert secret not in result.log, f"the secret payload appears in {p}'s log"
        assert "SECRET-PAYLOAD" not in result.log
