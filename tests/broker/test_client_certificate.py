"""The subject of an exchange can be the X.509-SVID of the connection: here forwarded by a
trusted proxy (nginx's escaped PEM header), verified in full like any other credential."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import jwt
import pytest

from pdp.broker.keys import create_key_file
from pdp.components import build_components
from tests.broker.conftest import GRANT, REPORTS, task_details
from tests.identity.workloads import TrustDomain, app_client, settings_for

pytestmark = pytest.mark.anyio
CONNECTION = "urn:pdp:token-type:client-certificate"


@pytest.fixture
def world(tmp_path: Path):
    domain = TrustDomain("example.org")
    key = tmp_path / "broker.pem"
    create_key_file(key)
    settings = settings_for(tmp_path, domain, trusted_proxies=["127.0.0.1"],
                            broker={"key_file": key, "audiences": [REPORTS]})
    return domain, build_components(settings)


def _form(**extra: str) -> dict[str, str]:
    return {"grant_type": GRANT, "subject_token": "-", "subject_token_type": CONNECTION,
            "audience": REPORTS, "scope": "reports:read",
            "authorization_details": task_details(), **extra}


async def test_a_forwarded_x509_svid_from_a_trusted_proxy_is_the_subject(world):
    domain, parts = world
    svid = domain.svid("/agents/reporter")
    async with app_client(parts) as client:
        r = await client.post("/v1/token", data=_form(),
                              headers={"ssl-client-escaped-cert": quote(svid.chain_pem)})
        assert r.status_code == 200, r.text
        claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "spiffe://example.org/agents/reporter"
        # The same header from a peer that is not a trusted proxy is ignored: no subject.
    async with app_client(build_components(parts.settings.model_copy(
            update={"trusted_proxies": []})), client=("127.0.0.1", 50001)) as other:
        r = await other.post("/v1/token", data=_form(),
                             headers={"ssl-client-escaped-cert": quote(svid.chain_pem)})
        assert r.status_code == 400 and "no client certificate" in r.json()["error_description"]


async def test_a_certificate_of_an_untrusted_authority_is_refused_and_recorded(world, tmp_path):
    domain, parts = world
    forged = TrustDomain("example.org").svid("/agents/reporter")  # same name, another CA
    async with app_client(parts) as client:
        r = await client.post("/v1/token", data=_form(),
                              headers={"ssl-client-escaped-cert": quote(forged.chain_pem)})
        assert r.status_code == 400
        body = r.json()
        assert body["error"] == "invalid_request"
        assert body["reason_codes"][0].startswith("identity.")
        assert parts.log.get(body["decision_id"])["principal"] is None
