"""/v1/authorize and friends, driven through the real app (ASGI transport)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.anyio


AUDITOR = "spiffe://example.org/audit/auditor"


def auditor(mint) -> dict[str, str]:
    """Looking decisions up is an auditor's query: it needs a bearer credential."""
    return {"authorization": f"Bearer {mint(AUDITOR)}"}


def body(token: str, action: str = "read", rid: str = "sales-daily", **extra) -> dict:
    return {"subject": {"token": token}, "action": action,
            "resource": {"type": "App::Dataset", "id": rid}, **extra}


async def test_valid_token_gets_allow_with_the_determining_policy(client, mint) -> None:
    r = await client.post("/v1/authorize", json=body(mint()))
    assert r.status_code == 200
    d = r.json()
    assert d["decision"] == "allow"
    assert [x["policy"] for x in d["reasons"]] == ["dataset.pipelines.read-write"]
    assert d["reason_codes"] == ["policy.permit"]
    assert d["principal"] == 'Pdp::Workload::"spiffe://example.org/services/etl"'
    assert d["policy_version"]["sha256"] and d["context"]["now"]


async def test_deny_is_http_200_with_a_sentence_saying_why(client, mint) -> None:
    r = await client.post("/v1/authorize", json=body(mint(), "write", "ledger"))
    assert r.status_code == 200
    d = r.json()
    assert d["decision"] == "deny" and d["reason_codes"] == ["policy.no_permit"]
    assert d["explanation"].startswith("Denied: no policy permits")


async def test_forbid_deny_names_the_policy_and_its_advice(client, components, mint) -> None:
    components.live.risk_level = 2
    r = await client.post("/v1/authorize", json=body(
        mint("spiffe://example.org/services/admin-console"), "delete", "ledger"))
    d = r.json()
    assert d["decision"] == "deny" and d["reason_codes"] == ["policy.forbid"]
    assert d["reasons"][0]["policy"] == "guard.risk.elevated"
    assert d["reasons"][0]["advice"] and "Retry when the risk level" in d["explanation"]
    assert d["context"]["risk_level"] == 2


async def test_decision_is_logged_and_found_by_id_without_the_raw_token(client, mint) -> None:
    token = mint()
    d = (await client.post("/v1/authorize", json=body(token))).json()
    r = await client.get(f"/v1/decisions/{d['decision_id']}", headers=auditor(mint))
    assert r.status_code == 200
    record = r.json()
    assert record["decision"] == "allow" and record["hash"] and record["seq"] >= 1
    assert token not in json.dumps(record)
    assert len(record["credential"]["sha256"]) == 64 and record["credential"]["jti"]


async def test_unknown_decision_id_is_a_404_problem(client, mint) -> None:
    r = await client.get("/v1/decisions/nope", headers=auditor(mint))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("token,code", [
    ("", "identity.missing"),
    ("not-a-jwt", "identity.malformed"),
    ("a.b.c", "identity.malformed"),
])
async def test_bad_credentials_are_denied_with_a_reason_code(client, token, code) -> None:
    d = (await client.post("/v1/authorize", json=body(token))).json()
    assert d["decision"] == "deny" and d["reason_codes"] == [code]
    assert d["principal"] is None


async def test_token_for_another_audience_is_denied(client, mint) -> None:
    d = (await client.post("/v1/authorize", json=body(mint(audience="other")))).json()
    assert d["decision"] == "deny" and d["reason_codes"] == ["identity.audience"]


async def test_valid_until_never_exceeds_the_token_expiry(client, mint) -> None:
    d = (await client.post("/v1/authorize", json=body(mint(ttl_s=60)))).json()
    from datetime import datetime

    valid_until = datetime.fromisoformat(d["valid_until"])
    now = datetime.fromisoformat(d["timestamp"])
    assert 0 < (valid_until - now).total_seconds() <= 61


@pytest.mark.parametrize("key", ["live", "credential"])
async def test_pep_may_not_send_reserved_context(client, mint, key) -> None:
    r = await client.post("/v1/authorize", json=body(mint(), context={key: {}}))
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == f"context.{key}"


async def test_context_that_breaks_the_schema_is_denied_as_invalid(client, mint) -> None:
    d = (await client.post("/v1/authorize", json=body(mint(), context={"purpose": 7}))).json()
    assert d["decision"] == "deny" and d["reason_codes"] == ["request.invalid"]


async def test_unknown_action_is_denied(client, mint) -> None:
    d = (await client.post("/v1/authorize", json=body(mint(), "obliterate"))).json()
    assert d["reason_codes"] == ["request.unknown_action"]


async def test_malformed_json_is_400_problem(client) -> None:
    r = await client.post("/v1/authorize", content=b"{nope",
                          headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["title"] == "Malformed JSON body"


async def test_missing_field_is_422_naming_the_field(client, mint) -> None:
    r = await client.post("/v1/authorize", json={"subject": {"token": mint()}, "action": "read"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "resource"


async def test_subject_needs_exactly_one_credential(client) -> None:
    r = await client.post("/v1/authorize", json={"subject": {}, "action": "read",
                                                 "resource": {"type": "T", "id": "x"}})
    assert r.status_code == 422 and "exactly one" in r.text


async def test_oversized_body_is_413(client, mint) -> None:
    r = await client.post("/v1/authorize", json=body(mint(), context={"purpose": "x" * 5000}))
    assert r.status_code == 413


async def test_request_id_is_echoed_and_recorded(client, mint) -> None:
    r = await client.post("/v1/authorize", json=body(mint()), headers={"x-request-id": "req-42"})
    assert r.headers["x-request-id"] == "req-42"
    record = (await client.get(f"/v1/decisions/{r.json()['decision_id']}",
                               headers=auditor(mint))).json()
    assert record["request_id"] == "req-42"


async def test_batch_verifies_once_and_answers_each_item(client, mint) -> None:
    r = await client.post("/v1/authorize/batch", json={
        "subject": {"token": mint()},
        "items": [{"action": "read", "resource": {"type": "App::Dataset", "id": "sales-daily"}},
                  {"action": "write", "resource": {"type": "App::Dataset", "id": "ledger"}}]})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["decision"] for x in results] == ["allow", "deny"]
    assert len({x["decision_id"] for x in results}) == 2


async def test_metrics_count_decisions_by_outcome_and_reason(client, mint) -> None:
    await client.post("/v1/authorize", json=body(mint()))
    await client.post("/v1/authorize", json=body("junk"))
    text = (await client.get("/metrics")).text
    assert 'pdp_decisions_total{decision="allow",reason="policy.permit"}' in text
    assert 'pdp_decisions_total{decision="deny",reason="identity.malformed"}' in text
    assert "pdp_decision_latency_seconds_bucket" in text and "pdp_bundle_info" in text


async def test_reload_refuses_a_bad_bundle_and_keeps_serving(client, components, mint) -> None:
    admin = {"authorization": f"Bearer {mint('spiffe://example.org/ops/sre-console')}"}
    directory = components.settings.policies
    (directory / "broken.cedar").write_text("permit(")
    r = await client.post("/v1/policies/reload", headers=admin)
    assert r.status_code == 409 and "broken.cedar" in r.text
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "degraded" and ready["bundle_reload_error"]["problems"]
    assert "pdp_bundle_last_reload_ok 0.0" in (await client.get("/metrics")).text
    d = (await client.post("/v1/authorize", json=body(mint()))).json()
    assert d["decision"] == "allow"
    (directory / "broken.cedar").unlink()
    assert (await client.post("/v1/policies/reload", headers=admin)).json()["ok"] is True
    assert (await client.get("/readyz")).json()["status"] == "ready"


async def test_openapi_documents_every_endpoint_with_examples(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ["/v1/authorize", "/v1/authorize/batch", "/v1/decisions/{decision_id}",
                 "/healthz", "/readyz", "/metrics", "/v1/policies/reload"]:
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["AuthorizeRequest"]["examples"]


async def test_a_deny_carries_the_structured_diagnosis(client, mint) -> None:
    d = (await client.post("/v1/authorize", json={
        "subject": {"token": mint("spiffe://example.org/services/checkout")}, "action": "call",
        "resource": {"type": "App::Api", "id": "billing"}})).json()
    assert d["decision"] == "deny"
    (diag,) = d["diagnosis"]
    assert diag["policy"] == "api.call.scoped" and diag["scope_matched"] is True
    assert diag["conditions"][0]["outcome"] == "false" and diag["conditions"][0]["blocking"]
    assert "`principal.scopes.contains(resource.scope)` was false" in d["explanation"]


async def test_an_allow_is_diagnosed_only_on_request(client, mint) -> None:
    plain = (await client.post("/v1/authorize", json=body(mint()))).json()
    assert plain["diagnosis"] == []
    asked = (await client.post("/v1/authorize", json=body(mint(), explain=True))).json()
    assert asked["diagnosis"][0]["policy"] == "dataset.pipelines.read-write"
    assert asked["diagnosis"][0]["applies"] is True
