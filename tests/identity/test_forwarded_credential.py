"""Forwarded client certificates: read only from trusted proxies, then verified in full."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI, Request

from pdp.api.forwarded import forwarded_credential, unfold_pem
from pdp.config import Settings
from pdp.identity.errors import IdentityError
from pdp.identity.verifier import IdentityVerifier
from tests.identity.workloads import TrustDomain, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def td() -> TrustDomain:
    return TrustDomain("example.org")


@pytest.fixture
def settings(tmp_path: Path, td: TrustDomain) -> Settings:
    return settings_for(tmp_path, td, trusted_proxies=["10.0.0.0/24", "::1"])


def probe(settings: Settings) -> FastAPI:
    """A stand-in gateway endpoint: what forwarded_credential makes of the request."""
    app = FastAPI()
    verifier = IdentityVerifier.from_settings(settings)

    @app.get("/probe")
    async def _probe(request: Request) -> dict[str, Any]:
        try:
            credential = forwarded_credential(request, settings)
        except IdentityError as e:
            return {"error": str(e.code), "reason": e.reason}
        if credential is None:
            return {"credential": None}
        try:
            identity = verifier.verify(credential, datetime.now(UTC))
        except IdentityError as e:
            return {"error": str(e.code), "reason": e.reason}
        return {"principal": identity.principal_id, "kind": identity.kind}

    return app


async def ask(settings: Settings, peer: str, headers: dict[str, str]) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=probe(settings), client=(peer, 4242))
    async with httpx.AsyncClient(transport=transport, base_url="http://pdp") as client:
        return (await client.get("/probe", headers=headers)).json()


def xfcc(chain_pem: str, leaf_der: bytes | None = None, uri: str | None = None) -> str:
    parts = ['By=spiffe://example.org/pdp']
    if leaf_der is not None:
        parts.append(f"Hash={hashlib.sha256(leaf_der).hexdigest()}")
    if uri is not None:
        parts.append(f"URI={uri}")
    parts.append(f'Chain="{quote(chain_pem, safe="")}"')
    return ";".join(parts)


async def test_envoy_xfcc_from_a_trusted_proxy_is_verified_in_full(settings: Settings,
                                                                   td: TrustDomain) -> None:
    svid = td.svid("/services/etl")
    der = svid.cert.public_bytes(Encoding.DER)
    header = "By=spiffe://example.org/front;Cert=x," + xfcc(
        svid.chain_pem, der, "spiffe://example.org/services/etl")  # the nearest is the last
    body = await ask(settings, "10.0.0.7", {"x-forwarded-client-cert": header})
    assert body == {"principal": "spiffe://example.org/services/etl", "kind": "x509-svid"}


async def test_xfcc_from_an_untrusted_peer_is_ignored(settings: Settings, td: TrustDomain) -> None:
    svid = td.svid("/services/etl")
    body = await ask(settings, "192.168.1.9", {"x-forwarded-client-cert": xfcc(svid.chain_pem)})
    assert body == {"credential": None}


async def test_no_trusted_proxies_means_forwarded_headers_are_ignored(
        tmp_path: Path, td: TrustDomain) -> None:
    settings = settings_for(tmp_path, td)
    body = await ask(settings, "10.0.0.7",
                     {"x-forwarded-client-cert": xfcc(td.svid("/services/etl").chain_pem)})
    assert body == {"credential": None}


async def test_xfcc_hash_that_does_not_match_the_leaf_is_refused(settings: Settings,
                                                                 td: TrustDomain) -> None:
    svid = td.svid("/services/etl")
    other = td.svid("/services/etl").cert.public_bytes(Encoding.DER)
    body = await ask(settings, "10.0.0.7",
                     {"x-forwarded-client-cert": xfcc(svid.chain_pem, other)})
    assert body == {"error": "identity.malformed", "reason": "xfcc-hash-mismatch"}


async def test_forwarded_chain_is_revalidated_not_trusted(settings: Settings) -> None:
    rogue = TrustDomain("example.org").svid("/services/etl")  # signed by a CA we do not trust
    body = await ask(settings, "10.0.0.7", {"x-forwarded-client-cert": xfcc(rogue.chain_pem)})
    assert body["error"] == "identity.certificate"


async def test_nginx_escaped_cert_from_a_trusted_proxy(settings: Settings,
                                                       td: TrustDomain) -> None:
    svid = td.svid("/services/etl")
    body = await ask(settings, "::1",
                     {"ssl-client-escaped-cert": quote(svid.chain_pem, safe="")})
    assert body["principal"] == "spiffe://example.org/services/etl"


async def test_nginx_ssl_client_cert_with_folded_lines(settings: Settings,
                                                       td: TrustDomain) -> None:
    svid = td.svid("/services/etl")
    folded = svid.chain_pem.strip().replace("\n", " ")  # what survives a header
    body = await ask(settings, "10.0.0.1", {"ssl-client-cert": folded})
    assert body["principal"] == "spiffe://example.org/services/etl"


def test_unfold_pem_rewraps_each_certificate(td: TrustDomain) -> None:
    pem = td.svid("/a").chain_pem
    assert unfold_pem(pem.replace("\n", "\t")) == pem
    with pytest.raises(IdentityError):
        unfold_pem("not a certificate")
