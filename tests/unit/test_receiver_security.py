"""The receiver under attack, in-process (no Ray): TLS identity, hostile frames, job mismatch."""

from __future__ import annotations

import asyncio
import collections

import grpc
import pytest

from fed._cli.certs import write_certs_for_addresses
from fed._errors import FedTransportError, UntrustedPayloadError, translate
from proxy._config import TlsFiles, TransportConfig
from proxy._receiver import ReceiverProxy
from proxy._sender import SenderProxy
from proxy.errors import TransportError, UnpicklingRefusedError
from tests.hostile import RawClient, all_cases
from tests.support import free_ports

MAX = 1 << 16


@pytest.fixture
def pki(tmp_path):
    """alice and bob under one organisation's CA, carol under another; a bundle of both."""
    a, b, c = free_ports(3)
    addrs = {"alice": f"127.0.0.1:{a}", "bob": f"127.0.0.1:{b}", "carol": f"127.0.0.1:{c}"}
    org1 = write_certs_for_addresses({p: addrs[p] for p in ("alice", "bob")}, tmp_path / "org1", ca_name="org1")
    org2 = write_certs_for_addresses({"carol": addrs["carol"]}, tmp_path / "org2", ca_name="org2")
    stranger = write_certs_for_addresses({"bob": addrs["bob"]}, tmp_path / "stranger", ca_name="stranger")
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(open(org1["ca_cert"], "rb").read() + open(org2["ca_cert"], "rb").read())

    def tls(party, files=None):
        files = files or (org2 if party == "carol" else org1)
        return TlsFiles(str(bundle), files["parties"][party]["cert"], files["parties"][party]["key"])

    return addrs, tls, stranger


def _cfg(addrs, party, tls=None, job="job", **kw):
    return TransportConfig(job=job, party=party, listen_address=addrs[party],
                           peers={p: a for p, a in addrs.items() if p != party}, tls=tls,
                           max_message_bytes=MAX, connect_timeout_s=kw.pop("connect_timeout_s", 5), **kw)


async def _value(v):
    return v


def test_tls_across_two_cas_delivers_and_binds_the_sender_to_its_certificate(pki):
    addrs, tls, stranger = pki

    async def main():
        alice = ReceiverProxy(_cfg(addrs, "alice", tls("alice")))
        await alice.start()
        try:
            bob = SenderProxy(_cfg(addrs, "bob", tls("bob")))
            carol = SenderProxy(_cfg(addrs, "carol", tls("carol")))
            await bob.send("alice", "1", "f", [_value({"w": [1, 2]})])
            await carol.send("alice", "2", "g", [_value("from carol")])
            assert await alice.recv("bob", "1", "f") == {"w": [1, 2]}
            assert await alice.recv("carol", "2", "g") == "from carol"
            assert await bob.ping("alice") is None

            # carol, with a valid certificate of her own, claims to be bob
            mallory = SenderProxy(_cfg(addrs, "bob", tls("carol")))
            with pytest.raises(TransportError) as info:
                await mallory.send("alice", "3", "f", [_value("forged")])
            err = translate(info.value)
            assert isinstance(err, FedTransportError) and err.code == "PERMISSION_DENIED"
            assert "claims to come from party 'bob'" in str(err) and "identifies 'carol'" in str(err)
            why = await mallory.ping("alice")
            assert why.startswith("PERMISSION_DENIED") and "'carol'" in why
            stats = await alice.stats()
            assert stats["rejected"] == {"identity_mismatch": 2} and stats["received"] == 2
            for s in (bob, carol, mallory):
                await s.stop()
        finally:
            await alice.stop()

    asyncio.run(main())


def test_client_refuses_a_server_that_is_not_the_party_it_dials(pki):
    addrs, tls, _ = pki

    async def main():
        # alice listens at the address the config gives for bob
        swapped = dict(addrs, alice=addrs["bob"])
        server = ReceiverProxy(_cfg(swapped, "alice", tls("alice")))
        await server.start()
        try:
            carol = SenderProxy(_cfg(addrs, "carol", tls("carol"), connect_timeout_s=0.5))
            with pytest.raises(TransportError, match="Hostname Verification|handshake|certificate"):
                await carol.send("bob", "1", "f", [_value(1)])
            await carol.stop()
        finally:
            await server.stop()

    asyncio.run(main())


def test_clients_without_a_certificate_or_from_an_unknown_ca_cannot_connect(pki):
    addrs, tls, stranger = pki

    async def main():
        alice = ReceiverProxy(_cfg(addrs, "alice", tls("alice")))
        await alice.start()
        try:
            bad = TlsFiles(stranger["ca_cert"], stranger["parties"]["bob"]["cert"], stranger["parties"]["bob"]["key"])
            outsider = SenderProxy(_cfg(addrs, "bob", bad, connect_timeout_s=0.5))
            with pytest.raises(TransportError, match="UNAVAILABLE"):
                await outsider.send("alice", "1", "f", [_value(1)])
            await outsider.stop()
            no_cert = grpc.aio.secure_channel(addrs["alice"], grpc.ssl_channel_credentials(
                open(tls("alice").ca_cert, "rb").read()), options=(("grpc.ssl_target_name_override", "localhost"),))
            code, _ = await RawClient(no_cert).ping("job", "bob", timeout=2)
            assert code == grpc.StatusCode.UNAVAILABLE
            await no_cert.close()
            assert (await alice.stats())["rejected"] == {}
        finally:
            await alice.stop()

    asyncio.run(main())


def test_every_hostile_message_gets_its_status_and_is_counted():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}

    async def main():
        alice = ReceiverProxy(_cfg(addrs, "alice", chunk_bytes=4096))
        await alice.start()
        try:
            channel = grpc.aio.insecure_channel(addrs["alice"])
            raw = RawClient(channel)
            bob = SenderProxy(_cfg(addrs, "bob"))
            want = collections.Counter()
            bad = all_cases("job", "bob", "alice", MAX, 240)
            recv = asyncio.ensure_future(alice.recv("bob", "7", "f"))
            for i, case in enumerate(bad):
                code, details = await raw.push(case.frames, small=case.small)
                assert code != grpc.StatusCode.OK, case
                if case.code is not None:
                    assert code == case.code, (case.name, details)
                    want[case.reason] += 1
                if i == 120:  # a real message in the middle of the attack
                    await bob.send("alice", "7", "f", [_value(list(range(5)))])
            assert await recv == list(range(5))
            stats = await alice.stats()
            rejected = stats["rejected"]
            assert sum(rejected.values()) == len(bad)  # pings are counted below
            randoms = sum(1 for c in bad if c.reason is None)
            for reason, n in want.items():
                assert want[reason] <= rejected[reason] <= n + randoms, (reason, rejected)
            assert stats["received"] == 1 and stats["buffered_bytes"] == 0
            code, details = await raw.ping("other", "bob")
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "'other'" in details
            stranger = SenderProxy(_cfg(addrs, "bob", job="other", connect_timeout_s=0))  # 0: no retry of the refusal
            with pytest.raises(TransportError) as info:
                await stranger.send("alice", "1", "f", [_value(1)])
            text = str(translate(info.value))
            assert "FAILED_PRECONDITION" in text and "job 'other'" in text and "runs job 'job'" in text
            assert (await alice.stats())["rejected"]["wrong_job"] == rejected["wrong_job"] + 2
            for s in (bob, stranger):
                await s.stop()
            await channel.close()
        finally:
            await alice.stop()

    asyncio.run(main())


def test_a_refused_payload_names_the_sender_and_object():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}

    async def main():
        from proxy._allowlist import build_allowed
        alice = ReceiverProxy(_cfg(addrs, "alice", allowed_globals=build_allowed()))
        await alice.start()
        try:
            bob = SenderProxy(_cfg(addrs, "bob"))
            await bob.send("alice", "4", "make", [_value(collections.UserDict(a=1))])
            with pytest.raises(UnpicklingRefusedError) as info:
                await alice.recv("bob", "4", "make")
            err = translate(info.value)
            assert isinstance(err, UntrustedPayloadError) and err.peer == "bob" and err.key == "4"
            assert "collections.UserDict" in str(err) and "party 'bob'" in str(err)
            await bob.stop()
        finally:
            await alice.stop()

    asyncio.run(main())


def test_pinning_stops_one_organisations_ca_from_certifying_another_party(pki, tmp_path):
    addrs, tls, stranger = pki
    org1_ca = tls("alice").ca_cert.replace("bundle.crt", "org1/ca.crt")
    wide = tmp_path / "wide-bundle.crt"  # trusts a third CA that issued its own "bob"
    wide.write_bytes(open(tls("alice").ca_cert, "rb").read() + open(stranger["ca_cert"], "rb").read())
    forged = TlsFiles(str(wide), stranger["parties"]["bob"]["cert"], stranger["parties"]["bob"]["key"])

    async def main():
        for pin, accepted in (({}, True), ({"bob": org1_ca}, False)):
            alice_tls = TlsFiles(str(wide), tls("alice").cert, tls("alice").key, peer_ca=pin)
            alice = ReceiverProxy(_cfg(addrs, "alice", alice_tls))
            await alice.start()
            try:
                imposter = SenderProxy(_cfg(addrs, "bob", forged))
                real_bob = SenderProxy(_cfg(addrs, "bob", TlsFiles(str(wide), tls("bob").cert, tls("bob").key)))
                await real_bob.send("alice", "1", "f", [_value("real")])
                assert await alice.recv("bob", "1", "f") == "real"
                if accepted:  # without a pin, any trusted CA can vouch for any party name
                    await imposter.send("alice", "2", "f", [_value("forged")])
                else:
                    with pytest.raises(TransportError, match="not issued by the CA pinned for it"):
                        await imposter.send("alice", "2", "f", [_value("forged")])
                    assert (await alice.stats())["rejected"] == {"identity_mismatch": 1}
                for s in (imposter, real_bob):
                    await s.stop()
            finally:
                await alice.stop()

        # the client side: a pinned CA for bob means a server certified by another CA is not bob
        fake_bob = ReceiverProxy(_cfg(addrs, "bob", forged))
        await fake_bob.start()
        try:
            alice = SenderProxy(_cfg(addrs, "alice", TlsFiles(str(wide), tls("alice").cert, tls("alice").key,
                                                              peer_ca={"bob": org1_ca}), connect_timeout_s=0.5))
            with pytest.raises(TransportError, match="UNAVAILABLE"):
                await alice.send("bob", "1", "f", [_value(1)])
            await alice.stop()
        finally:
            await fake_bob.stop()

    asyncio.run(main())


def test_a_corrupt_payload_fails_its_receive_with_a_transport_error():
    addrs = {p: f"127.0.0.1:{port}" for p, port in zip(("alice", "bob"), free_ports(2))}

    async def main():
        from proxy._allowlist import build_allowed
        from tests.hostile import _frame, _header
        alice = ReceiverProxy(_cfg(addrs, "alice", allowed_globals=build_allowed()))
        await alice.start()
        try:
            channel = grpc.aio.insecure_channel(addrs["alice"])
            code, status = await RawClient(channel).push((_header("job", "bob", "alice", "9", 7), _frame(chunk=b"garbage")))
            assert (code, status) == (grpc.StatusCode.OK, "OK")
            with pytest.raises(TransportError, match="object 9 .* from party 'bob' could not be unpickled"):
                await alice.recv("bob", "9", "hostile")
            await channel.close()
            assert (await alice.ready()) is True
        finally:
            await alice.stop()

    asyncio.run(main())


def test_a_stream_checks_each_claimed_party_once_and_refuses_a_second_claim(pki, monkeypatch):
    import proxy._receiver as receiver
    from proxy import _wire_pb2 as wire
    from proxy._service import PROTOCOL_VERSION, PUSH_STREAM, open_channel

    addrs, tls, _ = pki
    checks = collections.Counter()
    check = receiver.identity_mismatch

    def counted(auth_context, claimed, pinned_ca=None):
        checks[claimed] += 1
        return check(auth_context, claimed, pinned_ca)

    monkeypatch.setattr(receiver, "identity_mismatch", counted)

    def small(src: str, key: str) -> bytes:
        header = wire.Header(version=PROTOCOL_VERSION, job="job", src=src, dst="alice", key=key, producer="f",
                             pickle_size=4)
        return wire.Small(header=header, payload=b"\x80\x05N.", id=int(key)).SerializeToString()

    async def main():
        alice = ReceiverProxy(_cfg(addrs, "alice", tls("alice")))
        await alice.start()
        channel = open_channel(addrs["alice"], tls("carol"), (), "alice")
        try:
            call = channel.stream_stream(PUSH_STREAM, request_serializer=bytes,
                                         response_deserializer=wire.Ack.FromString)()
            for key in ("1", "2", "3"):
                await call.write(small("carol", key))
            await call.write(small("bob", "4"))  # carol's certificate, claiming bob, on the same stream
            answers = {}
            while len(answers) < 4:
                ack = await asyncio.wait_for(call.read(), 10)
                for msg_id in (ack.id, *ack.more_ids):
                    answers[msg_id] = ack
            await call.done_writing()
            assert [answers[i].status for i in (1, 2, 3)] == [wire.OK] * 3
            assert answers[4].status == wire.REFUSED and answers[4].reason == "identity_mismatch"
            assert checks == {"carol": 1, "bob": 1}  # once per claimed party on this stream, not per message
            assert await alice.recv("carol", "3", "f") is None
        finally:
            await channel.close()
            await alice.stop()

    asyncio.run(main())
