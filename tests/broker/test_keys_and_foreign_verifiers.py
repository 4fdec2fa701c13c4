"""The broker's tokens verify with an implementation that is not ours (node `jose`, npm)
from the published JWKS alone; key rotation keeps old tokens alive through the overlap
and kills them after it.

`jose` is installed with `npm ci` into tests/broker/jose/ (node_modules is gitignored and
cached). Without node/npm the jose test skips, or fails under PDP_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from pdp.broker.keys import BrokerKey
from tests.broker.conftest import REPORTER, REPORTS, exchange, task_details
from tests.npm_packages import npm_installed

pytestmark = pytest.mark.anyio
JOSE_DIR = Path(__file__).resolve().parent / "jose"


@pytest.fixture(scope="module")
def node_jose() -> list[str]:
    node = npm_installed(JOSE_DIR, "jose/package.json", purpose="to verify with jose")
    return [node, str(JOSE_DIR / "verify.mjs")]


def _jose_verify(command: list[str], jwks: dict, token: str, issuer: str, audience: str,
                 now: int, tmp_path: Path) -> dict:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    out = subprocess.run([*command, str(path), token, issuer, audience, str(now)],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


async def _issue(client, svid) -> str:
    r = await exchange(client, svid(REPORTER), scope="reports:read", details=task_details())
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


async def test_node_jose_verifies_an_issued_token_from_the_published_jwks(
        client, svid, components, node_jose, tmp_path):
    token = await _issue(client, svid)
    jwks = (await client.get("/v1/broker/jwks.json")).json()
    issuer = components.settings.broker.issuer
    now = jwt.decode(token, options={"verify_signature": False})["iat"]
    result = _jose_verify(node_jose, jwks, token, issuer, REPORTS, now, tmp_path)
    assert result["ok"], result
    assert result["payload"]["sub"] == REPORTER
    assert result["payload"]["task"]["id"] == "T-1"
    assert result["header"] == {"alg": "ES256", "kid": jwks["keys"][0]["kid"], "typ": "at+jwt"}
    # jose refuses what it must: another audience, a tampered payload, a later time.
    assert not _jose_verify(node_jose, jwks, token, issuer, "other", now, tmp_path)["ok"]
    head, payload, sig = token.split(".")
    tampered = jwt.utils.base64url_encode(json.dumps(
        {**jwt.decode(token, options={"verify_signature": False}), "scope": "reports:write"}
    ).encode()).decode()
    assert not _jose_verify(node_jose, jwks, f"{head}.{tampered}.{sig}", issuer, REPORTS,
                            now, tmp_path)["ok"]
    late = _jose_verify(node_jose, jwks, token, issuer, REPORTS, now + 901, tmp_path)
    assert late["code"] == "ERR_JWT_EXPIRED"


async def _reasons(client, token: str) -> list[str]:
    return (await client.post("/v1/authorize", json={
        "subject": {"token": token}, "action": "read",
        "resource": {"type": "App::Dataset", "id": "sales-daily"}})).json()["reason_codes"]


async def test_rotation_keeps_old_tokens_through_the_overlap_and_refuses_them_after(
        client, svid, components, clock):
    old_token = await _issue(client, svid)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    components.broker.keyring.rotate(BrokerKey.generate(), now=clock.now(), overlap_s=300)
    components.verifier.refresh(clock.now(), force=True)
    new_token = await _issue(client, svid)
    assert jwt.get_unverified_header(new_token)["kid"] != old_kid
    kids = [k["kid"] for k in (await client.get("/v1/broker/jwks.json")).json()["keys"]]
    assert old_kid in kids and len(kids) == 2
    assert await _reasons(client, old_token) == ["policy.permit"]
    assert await _reasons(client, new_token) == ["policy.permit"]

    clock.at += timedelta(seconds=301)  # past the overlap, both tokens still unexpired
    components.verifier.refresh(clock.now(), force=True)
    kids = [k["kid"] for k in (await client.get("/v1/broker/jwks.json")).json()["keys"]]
    assert kids == [jwt.get_unverified_header(new_token)["kid"]]
    assert await _reasons(client, old_token) == ["identity.unknown_key"]
    assert await _reasons(client, new_token) == ["policy.permit"]


async def test_a_retired_key_from_the_config_is_trusted_until_its_date(tmp_path, bundle_copy,
                                                                       clock):
    from pdp.broker.keys import create_key_file
    from pdp.components import build_components
    from pdp.config import load_settings
    from tests.conftest import asgi_client

    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    create_key_file(old)
    create_key_file(new)
    policies = bundle_copy()
    settings = load_settings(None, dev=True, policies=policies, state_dir=tmp_path / "s",
                             broker={"key_file": old})
    parts = build_components(settings, clock=clock)
    async with asgi_client(parts) as c:
        token = (await exchange(c, parts.dev_issuer.mint(REPORTER, now=clock.at),
                                details=task_details())).json()["access_token"]
    parts.close()
    until = clock.at + timedelta(seconds=120)
    settings = load_settings(None, dev=True, policies=policies, state_dir=tmp_path / "s2",
                             broker={"key_file": new,
                                     "retired_keys": [{"key_file": old, "until": until}]})
    parts = build_components(settings, clock=clock)
    async with asgi_client(parts) as c:
        assert await _reasons(c, token) == ["policy.permit"]
        clock.at = until
        parts.verifier.refresh(clock.now(), force=True)
        assert await _reasons(c, token) == ["identity.unknown_key"]
    parts.close()
