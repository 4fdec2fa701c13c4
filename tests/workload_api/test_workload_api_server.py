"""The test Workload API server, checked with the real client (the ``spiffe`` package).

If these fail, every test built on the server proves nothing: it must serve what an
agent serves, stream changes, insist on the security header and go away when stopped.
"""

from __future__ import annotations

import threading

import grpc
import jwt
import pytest
from spiffe import WorkloadApiClient
from spiffe.workloadapi.errors import FetchX509SvidError

from tests.workload_api.protocol import SERVICE, messages
from tests.workload_api.server import Authority


def test_x509_svid_chains_to_the_bundle_and_jwt_svid_verifies(workload_api, authority):
    server = workload_api("/services/etl")
    client = WorkloadApiClient(server.address)
    try:
        context = client.fetch_x509_context()
        svid = context.default_svid
        assert str(svid.spiffe_id) == "spiffe://example.org/services/etl"
        roots = context.x509_bundle_set.get_bundle_for_trust_domain(
            svid.spiffe_id.trust_domain).x509_authorities
        assert [r.subject for r in roots] == [authority.signer.root.cert.subject]
        # The leaf's issuer (the intermediate, sent in the chain) is signed by the root.
        assert svid.cert_chain[1].issuer == authority.signer.root.cert.subject

        token = client.fetch_jwt_svid({"pdp"}).token
        key = authority.signer.jwt_key.public_key()
        claims = jwt.decode(token, key, algorithms=["ES256"], audience="pdp")
        assert claims["sub"] == "spiffe://example.org/services/etl"
        assert claims["exp"] - claims["iat"] == server.jwt_ttl_s
    finally:
        client.close()


def test_rotation_and_retired_ca_are_streamed(workload_api, authority):
    server = workload_api("/services/etl")
    client = WorkloadApiClient(server.address)
    seen: list[tuple[int, int]] = []  # (leaf serial, number of roots)
    changed = threading.Event()

    def on_update(context) -> None:
        bundle = context.x509_bundle_set.get_bundle_for_trust_domain(
            context.default_svid.spiffe_id.trust_domain)
        seen.append((context.default_svid.leaf.serial_number, len(bundle.x509_authorities)))
        changed.set()

    handle = client.stream_x509_contexts(on_update, lambda e: None)
    try:
        for step in (None, server.rotate_svid, authority.rotate, authority.retire_oldest):
            changed.clear()
            if step is not None:
                step()
            assert changed.wait(10), f"no update after {step}"
        serials = [s for s, _ in seen]
        assert len(set(serials[:2])) == 2, "a rotated SVID must be a new certificate"
        assert [n for _, n in seen][-2:] == [2, 1], "a second CA, then only one again"
    finally:
        handle.cancel()
        client.close()


def test_federated_bundles_are_sent(socket_dir, authority):
    from tests.workload_api.server import WorkloadApiServer

    partner = Authority("partner.example")
    server = WorkloadApiServer(socket_dir / "f.sock", authority, "/pdp",
                               federated=(partner,)).start()
    client = WorkloadApiClient(server.address)
    try:
        bundles = client.fetch_x509_context().x509_bundle_set
        assert {str(b.trust_domain) for b in bundles.bundles} == {"example.org", "partner.example"}
        assert {str(b.trust_domain) for b in client.fetch_jwt_bundles().bundles} == {
            "example.org", "partner.example"}
    finally:
        client.close()
        server.stop()


def test_a_call_without_the_security_header_is_refused(workload_api):
    server = workload_api("/services/etl")
    with grpc.insecure_channel(server.address) as channel:
        m = messages()
        fetch = channel.unary_unary(f"/{SERVICE}/FetchJWTSVID",
                                    request_serializer=m.JWTSVIDRequest.SerializeToString,
                                    response_deserializer=m.JWTSVIDResponse.FromString)
        with pytest.raises(grpc.RpcError) as e:
            fetch(m.JWTSVIDRequest(audience=["pdp"]), timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_stopped_server_is_unavailable(workload_api):
    server = workload_api("/services/etl")
    client = WorkloadApiClient(server.address)
    try:
        client.fetch_x509_svid()
        server.stop()
        with pytest.raises(FetchX509SvidError):
            client.fetch_x509_svid(timeout=2)
    finally:
        client.close()
