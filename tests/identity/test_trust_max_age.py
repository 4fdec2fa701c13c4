""""Last good" trust has a maximum age (issue 13, item 5).

A bundle endpoint or JWKS that cannot be refreshed keeps verifying with its
last good copy, but only until ``max_age_s`` after its last good read: then its
credentials are denied with ``identity.trust_stale``, ``/readyz`` answers 503
and ``pdp_identity_source_stale`` is 1, until a read succeeds again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from context.clock import FixedClock
from pdp.audit.memory import MemoryDecisionLog
from pdp.components import build_components
from pdp.config import IssuerConfig, TrustDomainConfig
from pdp.decision.model import AuthorizeInput, ResourceRef
from pdp.identity.errors import TrustStale
from pdp.identity.model import BearerToken, X509Chain
from pdp.identity.trust_store import DEFAULT_MAX_AGE_S, default_max_age_s
from pdp.identity.verifier import IdentityVerifier
from tests.identity.test_trust_sources import Documents, Idp, settings
from tests.identity.workloads import TrustDomain, app_client, settings_for

pytestmark = pytest.mark.anyio

MAX_AGE_S = 120


@pytest.fixture
def docs() -> Iterator[Documents]:
    server = Documents()
    yield server
    server.close()


@pytest.fixture(scope="module")
def td() -> TrustDomain:
    return TrustDomain("example.org")


def _domain(url: str) -> TrustDomainConfig:
    return TrustDomainConfig(name="example.org", bundle_url=url, refresh_s=10,
                             max_age_s=MAX_AGE_S)


def test_a_bundle_that_cannot_be_refreshed_stops_verifying_past_its_maximum_age(
        tmp_path: Path, docs: Documents, td: TrustDomain) -> None:
    url = docs.put("/example.org", td.bundle(sequence=1))
    t0 = datetime.now(UTC)
    verifier = IdentityVerifier.from_settings(settings(tmp_path, trust_domains=[_domain(url)]))
    verifier.refresh(t0)
    token = BearerToken(td.jwt_svid("/services/etl"))  # valid for 5 minutes
    chain = X509Chain(td.svid("/services/etl").chain_pem)  # valid for an hour
    assert verifier.verify(token, t0).principal_id.endswith("/services/etl")  # now cached

    docs.put("/example.org", b"", status=503)  # the endpoint stops answering
    assert verifier.refresh(t0 + timedelta(seconds=11))  # failed: the last good copy is kept
    at = t0 + timedelta(seconds=MAX_AGE_S - 10)
    assert verifier.verify(token, at) and verifier.verify(chain, at)
    assert not verifier.source_statuses(at)[0].stale

    later = t0 + timedelta(seconds=MAX_AGE_S + 5)
    verifier.refresh(later)
    [status] = verifier.source_statuses(later)
    assert status.stale and not status.ok and status.max_age_s == MAX_AGE_S
    for credential in (token, chain):  # cached or not
        with pytest.raises(TrustStale) as refused:
            verifier.verify(credential, later)
        assert refused.value.code == "identity.trust_stale"
        assert refused.value.proven_principal is None  # stale keys prove nobody

    # The endpoint answers again: the next read makes the source fresh.
    docs.put("/example.org", td.bundle(sequence=2))
    assert verifier.refresh(later, force=True) == []
    assert not verifier.source_statuses(later)[0].stale
    assert verifier.verify(token, later)


def test_an_issuer_jwks_that_cannot_be_refreshed_stops_verifying_past_its_maximum_age(
        tmp_path: Path, docs: Documents) -> None:
    idp = Idp(docs)
    t0 = datetime.now(UTC)
    verifier = IdentityVerifier.from_settings(settings(tmp_path, issuers=[IssuerConfig(
        name="idp", issuer=idp.issuer, jwks_uri=idp.jwks_url, token_type="at+jwt",
        refresh_s=10, max_age_s=MAX_AGE_S)]))
    verifier.refresh(t0)
    token = BearerToken(idp.token())
    docs.put("/jwks", b"", status=500)
    verifier.refresh(t0 + timedelta(seconds=11))
    assert verifier.verify(token, t0 + timedelta(seconds=MAX_AGE_S)).principal_id == "billing-app"
    later = t0 + timedelta(seconds=MAX_AGE_S + 1)
    verifier.refresh(later)
    with pytest.raises(TrustStale, match="jwks of 'idp'"):
        verifier.verify(token, later)
    assert [s.source for s in verifier.source_statuses(later) if s.stale] == ["jwks:idp"]


def test_the_default_maximum_age_is_a_day_or_twelve_refresh_hints() -> None:
    assert DEFAULT_MAX_AGE_S == 86400
    assert default_max_age_s(300) == 86400  # the SPIFFE default refresh hint
    assert default_max_age_s(4 * 3600) == 12 * 4 * 3600


async def test_a_stale_source_denies_with_its_own_code_and_readyz_says_not_ready(
        tmp_path: Path, docs: Documents, td: TrustDomain) -> None:
    url = docs.put("/example.org", td.bundle(sequence=1))
    t0 = datetime.now(UTC)
    clock = FixedClock(t0)
    parts = build_components(
        settings_for(tmp_path, trust_domains=[_domain(url)]),
        clock=clock, log=MemoryDecisionLog())
    token = BearerToken(td.jwt_svid("/services/etl"))
    ask = AuthorizeInput(credential=token, action="read",
                         resource=ResourceRef("App::Dataset", "sales-daily"))
    async with app_client(parts) as client:
        assert (await client.get("/readyz")).status_code == 200
        assert parts.service.authorize_sync(ask).decision == "allow"

        docs.close()  # the endpoint is gone: connections are refused
        clock.at = t0 + timedelta(seconds=MAX_AGE_S + 5)
        parts.verifier.refresh(clock.at, force=True)

        decision = parts.service.authorize_sync(ask)
        assert decision.decision == "deny" and decision.reason_codes[0] == "identity.trust_stale"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["identity"]["sources"][0]["stale"] is True
        assert body["not_ready_because"] == [
            "trust source bundle:example.org is past its maximum age"]
        metrics = (await client.get("/metrics")).text
        assert 'pdp_identity_source_stale{source="bundle:example.org"} 1.0' in metrics
