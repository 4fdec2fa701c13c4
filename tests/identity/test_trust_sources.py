"""Trust bundles and issuer keys from endpoints: fetched at start, refreshed on a schedule,
the last good copy kept on failure and visible in /readyz and the metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from pdp.components import build_components
from pdp.config import IssuerConfig, Settings, TrustDomainConfig, load_settings
from pdp.identity.errors import UnknownKey, UntrustedIssuer
from pdp.identity.fetch import DiscoverySource, UrlSource, check_fetch_url
from pdp.identity.model import BearerToken, X509Chain
from pdp.identity.trust_bundle import BundleError
from pdp.identity.verifier import IdentityVerifier
from tests.identity.workloads import POLICIES, TrustDomain, app_client, authorize_body

pytestmark = pytest.mark.anyio


class Documents:
    """A loopback HTTP server serving whatever the test puts at a path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.hits: dict[str, int] = {}
        documents = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                documents.hits[self.path] = documents.hits.get(self.path, 0) + 1
                status, body = documents.routes.get(self.path, (404, b"{}"))
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, path: str, document: Any, status: int = 200) -> str:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.routes[path] = (status, body)
        return self.base + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def docs() -> Iterator[Documents]:
    server = Documents()
    yield server
    server.close()


@pytest.fixture(scope="module")
def td() -> TrustDomain:
    return TrustDomain("example.org")


@pytest.fixture(scope="module")
def partner() -> TrustDomain:
    return TrustDomain("partner.example")


def settings(tmp_path: Path, **kw: Any) -> Settings:
    kw.setdefault("pep_allowlist", ["*"])  # outside --dev an empty one refuses to start
    return load_settings(None, policies=POLICIES, state_dir=tmp_path / "state",
                         watch_policies=False, **kw)


def later(seconds: int) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


# -- SPIFFE bundle endpoints ---------------------------------------------------------------

def test_bundle_endpoint_is_fetched_at_start_and_trusted(tmp_path: Path, docs: Documents,
                                                         td: TrustDomain) -> None:
    url = docs.put("/example.org", td.bundle(sequence=1))
    verifier = IdentityVerifier.from_settings(settings(tmp_path, trust_domains=[
        TrustDomainConfig(name="example.org", bundle_url=url)]))
    now = datetime.now(UTC)
    assert verifier.verify(BearerToken(td.jwt_svid("/services/etl")), now).kind == "jwt-svid"
    assert verifier.verify(X509Chain(td.svid("/services/etl").chain_pem), now).kind == "x509-svid"
    [status] = verifier.source_statuses()
    assert status.ok and status.location == url and status.source == "bundle:example.org"


def test_bundle_endpoint_is_refreshed_on_its_refresh_hint_never_on_a_token(
        tmp_path: Path, docs: Documents, td: TrustDomain) -> None:
    url = docs.put("/example.org", td.bundle(sequence=1, jwt=False, hint=120))
    verifier = IdentityVerifier.from_settings(settings(tmp_path, trust_domains=[
        TrustDomainConfig(name="example.org", bundle_url=url)]))
    token = BearerToken(td.jwt_svid("/services/etl"))
    docs.put("/example.org", td.bundle(sequence=2, hint=120))  # the jwt key is published now
    with pytest.raises(UnknownKey):
        verifier.verify(token, datetime.now(UTC))
    assert docs.hits["/example.org"] == 1  # an unknown kid fetched nothing
    verifier.refresh(datetime.now(UTC))  # schedules: the hint is 120 s
    assert verifier.refresh(later(60)) == [] and docs.hits["/example.org"] == 1
    assert verifier.refresh(later(121)) == [] and docs.hits["/example.org"] == 2
    assert verifier.verify(token, datetime.now(UTC)).principal_id.endswith("/services/etl")


def test_failed_fetch_keeps_the_last_good_bundle_and_is_reported(
        tmp_path: Path, docs: Documents, td: TrustDomain) -> None:
    url = docs.put("/example.org", td.bundle(sequence=1))
    verifier = IdentityVerifier.from_settings(settings(tmp_path, trust_domains=[
        TrustDomainConfig(name="example.org", bundle_url=url, refresh_s=10)]))
    verifier.refresh(datetime.now(UTC))
    docs.put("/example.org", b"oops", status=503)
    errors = verifier.refresh(later(11))
    assert len(errors) == 1 and "HTTP 503" in errors[0] and "last good" in errors[0]
    [status] = verifier.source_statuses()
    assert not status.ok and "503" in (status.last_error or "") and status.failures == 1
    assert status.last_success is not None
    # The last good bundle still verifies; the retry comes sooner than the interval.
    assert verifier.verify(BearerToken(td.jwt_svid("/services/etl")), datetime.now(UTC))
    assert status.next_due is not None and status.next_due <= later(13)


def test_lower_spiffe_sequence_from_the_endpoint_is_refused(
        tmp_path: Path, docs: Documents, td: TrustDomain) -> None:
    url = docs.put("/example.org", td.bundle(sequence=5))
    verifier = IdentityVerifier.from_settings(settings(tmp_path, trust_domains=[
        TrustDomainConfig(name="example.org", bundle_url=url, refresh_s=10)]))
    verifier.refresh(datetime.now(UTC))
    docs.put("/example.org", {"keys": [], "spiffe_sequence": 4})  # older: would drop every key
    errors = verifier.refresh(later(11))
    assert errors and "sequence" in errors[0]
    assert verifier.verify(BearerToken(td.jwt_svid("/services/etl")), datetime.now(UTC))


def test_endpoint_down_at_start_starts_with_no_keys_and_recovers(
        tmp_path: Path, docs: Documents, td: TrustDomain) -> None:
    url = docs.put("/example.org", b"", status=500)
    verifier = IdentityVerifier.from_settings(settings(tmp_path, trust_domains=[
        TrustDomainConfig(name="example.org", bundle_url=url)]))
    token = BearerToken(td.jwt_svid("/services/etl"))
    with pytest.raises(UnknownKey):  # fail closed: the domain is known, with no keys
        verifier.verify(token, datetime.now(UTC))
    assert not verifier.source_statuses()[0].ok
    docs.put("/example.org", td.bundle(sequence=1))
    assert verifier.refresh(datetime.now(UTC)) == []  # a failed source is retried at once
    assert verifier.verify(token, datetime.now(UTC)).kind == "jwt-svid"


def test_federated_domains_each_verify_only_with_their_own_bundle(
        tmp_path: Path, docs: Documents, td: TrustDomain, partner: TrustDomain) -> None:
    verifier = IdentityVerifier.from_settings(settings(tmp_path, trust_domains=[
        TrustDomainConfig(name="example.org", bundle_url=docs.put("/a", td.bundle())),
        TrustDomainConfig(name="partner.example", bundle_url=docs.put("/b", partner.bundle())),
    ]))
    now = datetime.now(UTC)
    assert verifier.verify(BearerToken(partner.jwt_svid("/svc")), now).trust_domain == \
        "partner.example"
    assert verifier.verify(X509Chain(partner.svid("/svc").chain_pem), now).trust_domain == \
        "partner.example"
    # A partner key signing an example.org SVID (same kid, even) never verifies.
    forged = jwt.encode({"sub": "spiffe://example.org/services/etl", "aud": "pdp",
                         "exp": int(now.timestamp()) + 60},
                        partner.jwt_key, algorithm="ES256", headers={"kid": partner.kid})
    with pytest.raises(UnknownKey):
        verifier.verify(BearerToken(forged), now)
    from pdp.identity.errors import InvalidCertificate
    rogue = TrustDomain("example.org")  # an example.org leaf from another CA
    with pytest.raises(InvalidCertificate):
        verifier.verify(X509Chain(rogue.svid("/services/etl").chain_pem), now)


@pytest.mark.parametrize("url", ["http://pdp.example/bundle", "ftp://127.0.0.1/x",
                                 "https://user:pw@idp.example/jwks", "file:///etc/passwd"])
def test_keys_are_never_fetched_over_plain_http_off_loopback(url: str) -> None:
    with pytest.raises(ValueError):
        check_fetch_url(url)
    with pytest.raises(ValueError):
        UrlSource(url)


def test_a_bad_bundle_url_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        IdentityVerifier.from_settings(settings(tmp_path, trust_domains=[
            TrustDomainConfig(name="example.org", bundle_url="http://bundles.example/x")]))


def test_trust_domain_needs_exactly_one_bundle_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TrustDomainConfig(name="example.org")
    with pytest.raises(ValueError):
        TrustDomainConfig(name="example.org", bundle_file=tmp_path / "b.json",
                          bundle_url="https://x.example/b")
    with pytest.raises(ValueError):
        IssuerConfig(name="idp", issuer="https://idp.example", jwks_file=tmp_path / "j.json",
                     discovery_url="https://idp.example/.well-known/openid-configuration")


def test_oversized_document_is_refused(docs: Documents) -> None:
    url = docs.put("/big", b"{" + b" " * (2 << 20) + b"}")
    with pytest.raises(BundleError, match="larger"):
        UrlSource(url).read()


# -- OIDC discovery and jwks_uri -------------------------------------------------------------

class Idp:
    """An issuer's key pair, its JWKS and discovery document on the Documents server."""

    def __init__(self, docs: Documents, issuer: str | None = None) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "idp-1"
        self.docs = docs
        self.issuer = issuer or docs.base
        self.jwks_url = docs.put("/jwks", self.jwks())
        self.discovery_url = docs.put("/.well-known/openid-configuration",
                                      {"issuer": self.issuer, "jwks_uri": self.jwks_url})

    def jwks(self, *keys: tuple[str, Any]) -> dict[str, Any]:
        entries = keys or ((self.kid, self.key),)
        return {"keys": [{"kid": kid, "use": "sig", "alg": "ES256",
                          **ECAlgorithm.to_jwk(k.public_key(), as_dict=True)}
                         for kid, k in entries]}

    def token(self, *, key: Any = None, kid: str | None = None, iss: str | None = None,
              **claims: Any) -> str:
        now = int(datetime.now(UTC).timestamp())
        payload = {"iss": iss or self.issuer, "sub": "billing-app", "aud": "pdp",
                   "client_id": "billing-app", "iat": now, "exp": now + 300, "jti": "t-1",
                   **claims}
        return jwt.encode(payload, key or self.key, algorithm="ES256",
                          headers={"kid": kid or self.kid, "typ": "at+jwt"})


def test_issuer_keys_come_from_its_discovery_document(tmp_path: Path, docs: Documents) -> None:
    idp = Idp(docs)
    verifier = IdentityVerifier.from_settings(settings(tmp_path, issuers=[IssuerConfig(
        name="idp", issuer=idp.issuer, discovery_url=idp.discovery_url, token_type="at+jwt",
        principal_claim="client_id")]))
    identity = verifier.verify(BearerToken(idp.token()), datetime.now(UTC))
    assert (identity.principal_id, identity.kind) == ("billing-app", "jwt")
    assert docs.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}


def test_discovery_document_naming_another_issuer_is_refused(tmp_path: Path,
                                                             docs: Documents) -> None:
    idp = Idp(docs, issuer="https://evil.example")
    verifier = IdentityVerifier.from_settings(settings(tmp_path, issuers=[IssuerConfig(
        name="idp", issuer=docs.base, discovery_url=idp.discovery_url, token_type="at+jwt")]))
    [status] = verifier.source_statuses()
    assert not status.ok and "issuer" in (status.last_error or "")
    with pytest.raises(UnknownKey):  # no keys were taken from it
        verifier.verify(BearerToken(idp.token(iss=docs.base)), datetime.now(UTC))


def test_rotated_jwks_is_picked_up_on_refresh_and_the_last_good_kept_on_failure(
        tmp_path: Path, docs: Documents) -> None:
    idp = Idp(docs)
    verifier = IdentityVerifier.from_settings(settings(tmp_path, issuers=[IssuerConfig(
        name="idp", issuer=idp.issuer, jwks_uri=idp.jwks_url, token_type="at+jwt",
        refresh_s=30)]))
    verifier.refresh(datetime.now(UTC))
    new_key = ec.generate_private_key(ec.SECP256R1())
    docs.put("/jwks", idp.jwks(("idp-2", new_key), ("idp-1", idp.key)))
    rotated = BearerToken(idp.token(key=new_key, kid="idp-2"))
    with pytest.raises(UnknownKey):
        verifier.verify(rotated, datetime.now(UTC))
    assert verifier.refresh(later(31)) == []
    assert verifier.verify(rotated, datetime.now(UTC)).principal_id == "billing-app"
    assert verifier.verify(BearerToken(idp.token()), datetime.now(UTC))  # old key still listed
    docs.put("/jwks", b"not json")
    assert verifier.refresh(later(62))
    assert verifier.verify(rotated, datetime.now(UTC))


def test_discovery_url_and_trailing_slash_tolerance(tmp_path: Path, docs: Documents) -> None:
    idp = Idp(docs, issuer=docs.base + "/")
    verifier = IdentityVerifier.from_settings(settings(tmp_path, issuers=[IssuerConfig(
        name="idp", issuer=docs.base, discovery_url=idp.discovery_url, token_type="at+jwt",
        allow_trailing_slash=True)]))
    assert verifier.source_statuses()[0].ok
    assert verifier.verify(BearerToken(idp.token(iss=docs.base + "/")), datetime.now(UTC))
    strict = IdentityVerifier.from_settings(settings(tmp_path, issuers=[IssuerConfig(
        name="idp", issuer=docs.base, discovery_url=idp.discovery_url, token_type="at+jwt")]))
    assert not strict.source_statuses()[0].ok
    with pytest.raises((UnknownKey, UntrustedIssuer)):
        strict.verify(BearerToken(idp.token(iss=docs.base + "/")), datetime.now(UTC))


# -- /readyz and metrics --------------------------------------------------------------------

async def test_readyz_and_metrics_show_a_failing_source(tmp_path: Path, docs: Documents,
                                                        td: TrustDomain) -> None:
    url = docs.put("/example.org", td.bundle(sequence=1))
    parts = build_components(settings(tmp_path, trust_domains=[
        TrustDomainConfig(name="example.org", bundle_url=url, refresh_s=5)]))
    try:
        async with app_client(parts) as client:
            ready = (await client.get("/readyz")).json()
            assert ready["status"] == "ready"
            assert ready["identity"]["sources"][0]["ok"] is True
            docs.put("/example.org", b"", status=502)
            parts.verifier.refresh(datetime.now(UTC), force=True)
            degraded = (await client.get("/readyz")).json()
            metrics = (await client.get("/metrics")).text
            decision = (await client.post("/v1/authorize", json=authorize_body(
                td.jwt_svid("/services/etl")))).json()
        assert degraded["status"] == "degraded"
        source = degraded["identity"]["sources"][0]
        assert source["ok"] is False and "502" in source["last_error"]
        assert source["last_success"] is not None
        assert 'pdp_identity_source_up{source="bundle:example.org"} 0.0' in metrics
        assert ('pdp_identity_source_refresh_failures_total{source="bundle:example.org"} 1.0'
                in metrics)
        assert decision["decision"] == "allow"  # the last good bundle still serves
    finally:
        parts.close()


async def test_the_app_refreshes_sources_in_the_background(tmp_path: Path, docs: Documents,
                                                           td: TrustDomain) -> None:
    import asyncio

    url = docs.put("/example.org", td.bundle(sequence=1, jwt=False))
    parts = build_components(settings(tmp_path, trust_domains=[
        TrustDomainConfig(name="example.org", bundle_url=url, refresh_s=1)]))
    token = td.jwt_svid("/services/etl")
    try:
        async with app_client(parts) as client:
            first = (await client.post("/v1/authorize", json=authorize_body(token))).json()
            docs.put("/example.org", td.bundle(sequence=2))
            for _ in range(100):  # the refresh thread ticks every second
                await asyncio.sleep(0.1)
                if docs.hits.get("/example.org", 0) >= 2:
                    break
            second = (await client.post("/v1/authorize", json=authorize_body(token))).json()
        assert first["reason_codes"] == ["identity.unknown_key"]
        assert second["decision"] == "allow"
    finally:
        parts.close()


def test_discovery_source_reads_through_to_jwks(docs: Documents) -> None:
    idp = Idp(docs)
    source = DiscoverySource(idp.discovery_url, issuer_matches=lambda iss: iss == idp.issuer)
    assert json.loads(source.read()) == idp.jwks()
