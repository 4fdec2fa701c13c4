"""The token exchange end to end: issued only after a policy decision, never wider or
longer, verifiable by pyjwt from the published keys, usable at /v1/authorize at once,
and every exchange — issued or refused — in the hash-chained log without its tokens."""

from __future__ import annotations

import json

import jwt
import pytest

from tests.broker.conftest import (
    PLANNER,
    REPORTER,
    REPORTS,
    exchange,
    task_details,
)

pytestmark = pytest.mark.anyio


async def _jwks(client) -> jwt.PyJWKSet:
    meta = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["token_endpoint"].endswith("/v1/token")
    keys = (await client.get(meta["jwks_uri"].removeprefix("http://pdp"))).json()
    return jwt.PyJWKSet.from_dict(keys)


async def test_issued_token_verifies_with_pyjwt_and_carries_sub_aud_scope_task(client, svid):
    r = await exchange(client, svid(REPORTER), scope="reports:read",
                       details=task_details("T-7", "weekly summary"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert r.headers["cache-control"] == "no-store"
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
    key = (await _jwks(client))[header["kid"]]
    meta = (await client.get("/.well-known/oauth-authorization-server")).json()
    # The frozen clock is in the past for pyjwt: check exp ourselves, everything else by pyjwt.
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=REPORTS,
                        issuer=meta["issuer"], options={"verify_exp": False,
                                                        "verify_nbf": False,
                                                        "verify_iat": False})
    assert claims["sub"] == REPORTER
    assert claims["scope"] == "reports:read"
    assert claims["task"] == {"id": "T-7", "purpose": "weekly summary"}
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 900
    assert "act" not in claims


async def test_issued_token_is_usable_at_authorize_at_once(client, svid):
    r = await exchange(client, svid(REPORTER), audience="pdp", scope="datasets:read",
                       details=task_details())
    assert r.status_code == 200, r.text
    decision = (await client.post("/v1/authorize", json={
        "subject": {"token": r.json()["access_token"]}, "action": "read",
        "resource": {"type": "App::Dataset", "id": "sales-daily"}})).json()
    assert decision["decision"] == "allow", decision
    assert decision["principal"] == f'Pdp::Workload::"{REPORTER}"'


async def test_lifetime_is_at_most_the_subject_tokens_remaining_life(client, svid):
    r = await exchange(client, svid(REPORTER, ttl_s=120), details=task_details())
    assert r.status_code == 200
    assert r.json()["expires_in"] == 120


async def test_asking_to_outlive_the_subject_token_is_refused_not_narrowed(client, svid):
    r = await exchange(client, svid(REPORTER, ttl_s=120),
                       details=task_details(lifetime_s=121))
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["reason_codes"] == ["broker.lifetime_exceeded"]
    assert "at most 120 s" in body["error_description"]
    assert body["decision_id"]


async def test_asking_longer_than_the_permitting_policy_allows_is_refused(client, svid):
    # The broker's own cap is 900 s; policy broker.agents.pdp says @max_lifetime_s("600").
    r = await exchange(client, svid(REPORTER), audience="pdp", scope="datasets:read",
                       details=task_details(lifetime_s=700))
    assert r.status_code == 400
    assert r.json()["reason_codes"] == ["broker.lifetime_exceeded"]
    assert "policy broker.agents.pdp allows at most 600 s" in r.json()["error_description"]


async def test_asking_no_lifetime_gets_what_the_permitting_policy_allows(client, svid,
                                                                          components):
    r = await exchange(client, svid(REPORTER), audience="pdp", scope="datasets:read",
                       details=task_details())
    assert r.status_code == 200 and r.json()["expires_in"] == 600
    record = components.log.get(r.json()["decision_id"])
    assert record["request"]["context"]["lifetime_s"] == 600  # the lifetime issued


async def test_widening_scope_beyond_the_subject_token_is_invalid_scope(client, svid):
    first = await exchange(client, svid(REPORTER), scope="reports:read", details=task_details())
    task_token = first.json()["access_token"]
    r = await exchange(client, task_token, audience="pdp", scope="reports:read datasets:read")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"
    assert r.json()["reason_codes"] == ["broker.scope_widened"]


async def test_a_scope_the_policy_does_not_allow_is_access_denied_with_the_sentence(
        client, svid):
    r = await exchange(client, svid(REPORTER), scope="reports:delete", details=task_details())
    assert r.status_code == 403
    body = r.json()
    assert body["error"] == "access_denied"
    assert body["reason_codes"] == ["policy.no_permit"]
    assert "credential.issue" in body["error_description"]


async def test_an_unknown_audience_is_invalid_target(client, svid):
    r = await exchange(client, svid(REPORTER), audience="spiffe://example.org/services/x",
                       details=task_details())
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_target"


async def test_a_workload_no_policy_lets_exchange_is_denied(client, svid):
    r = await exchange(client, svid("spiffe://example.org/services/etl"), details=task_details())
    assert r.status_code == 403 and r.json()["error"] == "access_denied"


async def test_a_forged_subject_token_is_refused_and_recorded_without_a_principal(
        client, svid, components):
    token = svid(REPORTER)
    head, payload, sig = token.split(".")
    forged = ".".join([head, payload, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")])
    r = await exchange(client, forged, details=task_details())
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["reason_codes"] == ["identity.bad_signature"]
    record = components.log.get(body["decision_id"])
    assert record is not None and record["principal"] is None
    assert record["decision"] == "deny"


async def test_a_broker_token_exchanged_for_itself_is_refused(client, svid):
    first = await exchange(client, svid(REPORTER), details=task_details())
    r = await exchange(client, first.json()["access_token"], details=None)
    assert r.status_code == 400
    assert r.json()["reason_codes"] == ["broker.self_exchange"]


async def test_a_new_task_needs_a_purpose(client, svid):
    r = await exchange(client, svid(REPORTER), details=None)
    assert r.status_code == 400 and r.json()["reason_codes"] == ["broker.invalid_request"]


@pytest.mark.parametrize("form", [
    {"grant_type": "client_credentials"},
    {"subject_token_type": "urn:x:unknown"},
    {"authorization_details": "not json"},
    {"authorization_details": '[{"type": "urn:pdp:task", "lifetime_s": "600"}]'},
    {"authorization_details": '[{"type": "other"}]'},
    {"actor_token": "x"},
    {"requested_token_type": "urn:ietf:params:oauth:token-type:saml2"},
])
async def test_malformed_requests_are_rfc6749_errors_and_change_nothing(
        client, svid, components, form):
    before = len(components.log.tail(1000))
    base = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": svid(REPORTER),
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "authorization_details": task_details()}
    r = await client.post("/v1/token", data={**base, **form})
    assert r.status_code == 400
    assert r.json()["error"] in ("invalid_request", "unsupported_grant_type")
    assert len(components.log.tail(1000)) == before
    assert components.broker.tasks.tasks() == []


async def test_every_exchange_is_a_decision_record_without_any_token(
        client, svid, components):
    subject = svid(REPORTER)
    issued = await exchange(client, subject, scope="reports:read", details=task_details())
    refused = await exchange(client, subject, scope="reports:delete", details=task_details())
    token = issued.json()["access_token"]
    allowed = components.log.get(issued.json()["decision_id"])
    assert allowed["decision"] == "allow"
    assert allowed["action"].endswith('"credential.issue"')
    assert allowed["request"]["context"]["scopes"] == ["reports:read"]
    assert allowed["request"]["context"]["lifetime_s"] == 900
    assert allowed["request"]["context"]["task_id"] == "T-1"
    denied = components.log.get(refused.json()["decision_id"])
    assert denied["decision"] == "deny"
    assert denied["request"]["context"]["requested_scopes"] == ["reports:delete"]
    dump = json.dumps(components.log.tail(1000))
    assert token not in dump and subject not in dump
    assert token.split(".")[2] not in dump
    assert components.log.verify().ok


async def test_the_task_registry_lists_the_credential_for_auditors(
        client, svid, components, clock):
    r = await exchange(client, svid(REPORTER), details=task_details("T-9", "audit me"))
    jti = jwt.decode(r.json()["access_token"], options={"verify_signature": False})["jti"]
    sre = svid("spiffe://example.org/ops/sre-console", ttl_s=60)
    listing = (await client.get("/v1/tasks", headers={"authorization": f"Bearer {sre}"})).json()
    [task] = listing["tasks"]
    assert task["id"] == "T-9" and task["owner"] == REPORTER and task["live"]
    [cred] = task["credentials"]
    assert cred["jti"] == jti and cred["audience"] == REPORTS
    record = components.log.get(r.json()["decision_id"])
    assert record["request"]["context"]["jti"] == jti  # the log and the registry agree
    planner = svid(PLANNER, ttl_s=60)
    refused = await client.get("/v1/tasks", headers={"authorization": f"Bearer {planner}"})
    assert refused.status_code == 403


async def test_a_refused_exchange_opens_no_task(client, svid, components):
    r = await exchange(client, svid(REPORTER), scope="reports:delete", details=task_details())
    assert r.status_code == 403
    assert components.broker.tasks.tasks() == [] and components.broker.tasks.get("T-1") is None


async def test_a_decision_the_log_refuses_issues_nothing_and_leaves_no_row(
        client, svid, components, monkeypatch):
    from dataclasses import replace as swap

    from pdp.reasons import ReasonCode

    real = components.service.authorize

    async def log_down(request):  # the preview allowed; the recorded decision fails closed
        decision = await real(request)
        return swap(decision, decision="deny", reason_codes=(ReasonCode.AUDIT_UNAVAILABLE,))

    monkeypatch.setattr(components.service, "authorize", log_down)
    r = await exchange(client, svid(REPORTER), details=task_details("T-down"))
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert "access_token" not in r.json()
    assert components.broker.tasks.get("T-down") is None
    assert components.broker.tasks.credentials("T-down") == []
