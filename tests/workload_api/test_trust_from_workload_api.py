"""``pdp serve``'s trust bundles from the SPIFFE Workload API (``workload_api = true``).

Against the test Workload API server: the PDP's own and a federated trust domain are
trusted from the agent's streams; a rotated CA is trusted at once and a retired one
stops verifying without a restart (the bundle update revokes it); an agent that is not
there fails closed with ``identity.trust_stale`` naming it; an agent that goes away
keeps the last good bundles for ``max_age_s`` only, and is followed again when it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from spiffe import WorkloadApiClient

from pdp.config import TrustDomainConfig, load_settings
from pdp.identity.errors import IdentityError, TrustStale
from pdp.identity.model import BearerToken, X509Chain
from pdp.identity.verifier import IdentityVerifier
from tests.conftest import POLICIES
from tests.workload_api.server import Authority, WorkloadApiServer

ETL = "spiffe://example.org/services/etl"


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def verifier_for(tmp_path: Path, socket: str, *domains: str, **td_options) -> IdentityVerifier:
    settings = load_settings(
        None, policies=POLICIES, state_dir=tmp_path / "state", watch_policies=False,
        pep_allowlist=["*"], workload_api_socket=socket,
        trust_domains=[TrustDomainConfig(name=d, workload_api=True, **td_options)
                       for d in domains])
    return IdentityVerifier.from_settings(settings)


@pytest.fixture
def verifiers() -> Iterator[list[IdentityVerifier]]:
    made: list[IdentityVerifier] = []
    yield made
    for v in made:
        v.stop_refreshing()


def jwt_of(server: WorkloadApiServer) -> BearerToken:
    client = WorkloadApiClient(server.address)
    try:
        return BearerToken(client.fetch_jwt_svid({"pdp"}).token)
    finally:
        client.close()


def accepts(verifier: IdentityVerifier, credential) -> bool:
    try:
        verifier.verify(credential, datetime.now(UTC))
        return True
    except IdentityError:
        return False


def test_own_and_federated_domains_are_trusted_from_the_agent(
        tmp_path, socket_dir, authority, verifiers):
    partner = Authority("partner.example")
    pdp_api = WorkloadApiServer(socket_dir / "pdp.sock", authority, "/pdp",
                                federated=(partner,)).start()
    partner_api = WorkloadApiServer(socket_dir / "p.sock", partner, "/svc").start()
    etl_api = WorkloadApiServer(socket_dir / "etl.sock", authority, "/services/etl").start()
    try:
        verifier = verifier_for(tmp_path, pdp_api.address, "example.org", "partner.example")
        verifiers.append(verifier)
        now = datetime.now(UTC)
        assert verifier.verify(jwt_of(etl_api), now).principal_id == ETL
        assert verifier.verify(X509Chain(etl_api.svid.chain_pem), now).principal_id == ETL
        assert verifier.verify(jwt_of(partner_api), now).principal_id == (
            "spiffe://partner.example/svc")
        assert all(s.ok for s in verifier.source_statuses())
        assert verifier.workload_api.svid is not None  # the PDP's own X.509-SVID
    finally:
        for s in (pdp_api, partner_api, etl_api):
            s.stop()


def test_a_rotated_ca_is_trusted_and_a_retired_one_revoked_without_a_restart(
        tmp_path, workload_api, authority, verifiers):
    pdp_api, etl_api = workload_api("/pdp"), workload_api("/services/etl")
    verifier = verifier_for(tmp_path, pdp_api.address, "example.org")
    verifiers.append(verifier)
    old_jwt, old_x509 = jwt_of(etl_api), X509Chain(etl_api.svid.chain_pem)
    assert accepts(verifier, old_jwt) and accepts(verifier, old_x509)  # and cached now

    authority.rotate()  # a new CA signs from now on; both are in the bundle
    new_x509 = X509Chain(etl_api.rotate_svid().chain_pem)
    wait_for(lambda: accepts(verifier, new_x509))
    new_jwt = jwt_of(etl_api)
    assert accepts(verifier, new_jwt) and accepts(verifier, old_jwt)

    authority.retire_oldest()  # the agent drops the old CA: everything it signed is revoked
    wait_for(lambda: not accepts(verifier, old_jwt))
    assert not accepts(verifier, old_x509)
    assert accepts(verifier, new_jwt) and accepts(verifier, new_x509)


def test_no_agent_at_start_fails_closed_naming_the_workload_api(tmp_path, socket_dir,
                                                                 authority, verifiers):
    missing = f"unix://{socket_dir}/missing.sock"
    verifier = verifier_for(tmp_path, missing, "example.org")
    verifiers.append(verifier)
    token = BearerToken(authority.signer.jwt_svid("/services/etl"))
    with pytest.raises(TrustStale, match="Workload API") as e:
        verifier.verify(token, datetime.now(UTC))
    assert e.value.code == "identity.trust_stale" and e.value.reason == "trust-unavailable"
    assert not accepts(verifier, X509Chain(authority.signer.svid("/services/etl").chain_pem))
    [status] = verifier.source_statuses()
    assert not status.ok and "missing.sock" in status.location

    # The agent comes up on that socket: followed without a restart.
    server = WorkloadApiServer(socket_dir / "missing.sock", authority, "/pdp").start()
    try:
        wait_for(lambda: accepts(verifier, token), timeout=20)
    finally:
        server.stop()


def test_an_agent_gone_mid_run_keeps_the_last_good_bundle_for_max_age_only(
        tmp_path, workload_api, authority, verifiers):
    pdp_api, etl_api = workload_api("/pdp"), workload_api("/services/etl")
    verifier = verifier_for(tmp_path, pdp_api.address, "example.org", max_age_s=60)
    verifiers.append(verifier)
    token = jwt_of(etl_api)
    assert accepts(verifier, token)

    pdp_api.stop()
    wait_for(lambda: not verifier.source_statuses()[0].ok)
    [status] = verifier.source_statuses()
    assert "unavailable" in (status.last_error or "")
    now = datetime.now(UTC)
    assert verifier.verify(token, now).principal_id == ETL  # the last good bundle
    with pytest.raises(TrustStale):  # ... for max_age_s, not longer
        verifier.verify(token, now + timedelta(seconds=61))


def test_bad_bytes_from_the_agent_keep_the_last_good_bundle(tmp_path, workload_api, verifiers):
    pdp_api, etl_api = workload_api("/pdp"), workload_api("/services/etl")
    verifier = verifier_for(tmp_path, pdp_api.address, "example.org")
    verifiers.append(verifier)
    token = jwt_of(etl_api)
    assert accepts(verifier, token)

    pdp_api.send_garbage(True)  # bundles that are not DER and not JSON
    wait_for(lambda: not verifier.source_statuses()[0].ok)
    verifier.cache.clear()  # verified again, against the kept bundle
    assert accepts(verifier, token), "bad bytes must not replace the last good bundle"

    pdp_api.send_garbage(False)  # the agent recovers: followed again (reconnect, back off)
    wait_for(lambda: verifier.source_statuses()[0].ok, timeout=20)
    assert accepts(verifier, token)


def test_a_domain_names_exactly_one_bundle_source() -> None:
    with pytest.raises(ValueError, match="exactly one of bundle_file, bundle_url and workload_api"):
        TrustDomainConfig(name="example.org", workload_api=True, bundle_url="https://x/b")
    with pytest.raises(ValueError, match="exactly one"):
        TrustDomainConfig(name="example.org")


def test_tls_from_the_workload_api_refuses_files_and_needs_a_followed_domain(tmp_path) -> None:
    from pdp.api.svid_tls import svid_tls_for

    settings = load_settings(None, policies=POLICIES, state_dir=tmp_path, pep_allowlist=["*"],
                             tls_workload_api=True, tls_cert=tmp_path / "c.pem",
                             tls_key=tmp_path / "k.pem")
    with pytest.raises(ValueError, match="give no tls_cert or tls_key"):
        svid_tls_for(settings, None)
    plain = load_settings(None, policies=POLICIES, state_dir=tmp_path, pep_allowlist=["*"],
                          tls_workload_api=True)
    with pytest.raises(ValueError, match="needs a trust domain with workload_api = true"):
        svid_tls_for(plain, None)
