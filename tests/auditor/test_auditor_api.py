"""The auditor API, driven through the real app: authorized by the bundle, and itself logged."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import timedelta
from typing import Any

import httpx
import pytest

from pdp.components import build_components
from pdp.server import create_app

pytestmark = pytest.mark.anyio

AUDITOR = "spiffe://example.org/audit/auditor"
ETL = "spiffe://example.org/services/etl"
RESPONDER = "spiffe://example.org/oncall/responder"

ENDPOINTS = [("GET", "/v1/decisions"), ("GET", "/v1/decisions/some-id"),
             ("POST", "/v1/decisions/some-id/replay"), ("GET", "/v1/audit/verify"),
             ("GET", "/v1/audit/export"), ("GET", "/v1/identities")]


def body(token: str, action: str = "read", rid: str = "sales-daily", **extra: Any) -> dict:
    return {"subject": {"token": token}, "action": action,
            "resource": {"type": "App::Dataset", "id": rid}, **extra}


async def decide(client, token: str, action: str = "read", rid: str = "sales-daily",
                 **extra: Any) -> dict:
    r = await client.post("/v1/authorize", json=body(token, action, rid, **extra))
    assert r.status_code == 200
    return r.json()


def events(components, event: str) -> list[dict]:
    return [r for r in components.log.iter_all() if r.get("event") == event]


@pytest.mark.parametrize("method,path", ENDPOINTS)
async def test_every_auditor_endpoint_needs_a_credential(client, method, path) -> None:
    r = await client.request(method, path)
    assert r.status_code == 401 and r.json()["reason_codes"] == ["identity.missing"]


@pytest.mark.parametrize("method,path", ENDPOINTS)
async def test_every_auditor_endpoint_needs_a_permitting_policy(client, mint, method, path) -> None:
    r = await client.request(method, path, headers={"authorization": f"Bearer {mint(ETL)}"})
    assert r.status_code == 403 and r.json()["reason_codes"] == ["policy.no_permit"]


async def test_decisions_are_found_by_filter_newest_first_page_by_page(client, mint,
                                                                        auditor) -> None:
    etl, responder = mint(ETL), mint(RESPONDER)
    reads = [(await decide(client, etl))["decision_id"] for _ in range(3)]
    denied = (await decide(client, etl, "write", "ledger"))["decision_id"]
    await decide(client, responder)

    seen, cursor = [], None
    while True:
        params = {"principal": ETL, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/decisions", params=params, headers=auditor)).json()
        seen += [d["decision_id"] for d in page["decisions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [denied, *reversed(reads)]

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/v1/decisions", params=params, headers=auditor)
        assert r.status_code == 200, r.text
        return [d["decision_id"] for d in r.json()["decisions"]]

    assert await ids(action="write") == [denied]  # the bare id, resolved to App::Action::"write"
    assert await ids(resource="App::Dataset::ledger") == [denied]
    assert await ids(decision="deny", principal_prefix="spiffe://example.org/services/") == [denied]
    assert await ids(reason_code="policy.no_permit", kind="decision",
                     principal=f'Pdp::Workload::"{ETL}"') == [denied]
    assert set(await ids(policy="dataset.pipelines.read-write")) >= set(reads)
    assert len(await ids(principal_prefix="spiffe://example.org/oncall/", kind="decision")) == 1
    assert await ids(principal=ETL, until="2000-01-01T00:00:00Z") == []


async def test_each_audit_query_is_recorded_naming_the_caller_and_the_filters(
        client, components, auditor) -> None:
    r = await client.get("/v1/decisions", params={"principal": ETL, "decision": "deny"},
                         headers=auditor)
    assert r.status_code == 200
    event = events(components, "audit.query")[-1]
    assert event["kind"] == "admin" and event["principal"] == AUDITOR
    assert event["detail"]["filters"] == {"principal": ETL, "decision": "deny"}
    authorizing = components.log.get(event["authorized_by"])
    assert authorizing["decision"] == "allow" and authorizing["pep"] == "admin-api"
    assert authorizing["reasons"][0]["policy"] == "admin.auditors.audit"
    assert authorizing["action"] == 'Pdp::Action::"audit.read"'


@pytest.mark.parametrize("params,title", [({"since": "yesterday"}, "Invalid filter"),
                                          ({"cursor": "not-a-cursor"}, "Invalid cursor")])
async def test_a_bad_timestamp_or_cursor_is_a_400_problem(client, auditor, params, title) -> None:
    r = await client.get("/v1/decisions", params=params, headers=auditor)
    assert r.status_code == 400 and r.json()["title"] == title


async def test_a_decision_shows_its_policies_text_as_it_was_and_replays(
        client, components, mint, auditor) -> None:
    allowed = await decide(client, mint(ETL))
    assert allowed["decision"] == "allow"
    # The policy changes afterwards: the pipelines may now only write.
    policy_file = components.settings.policies / "datasets.cedar"
    old_text = policy_file.read_text()
    policy_file.write_text(old_text.replace(
        'action in [App::Action::"read", App::Action::"write"]', 'action == App::Action::"write"'))
    assert components.bundles.reload().ok

    r = await client.get(f"/v1/decisions/{allowed['decision_id']}", headers=auditor)
    assert r.status_code == 200
    view = r.json()
    assert view["bundle_archived"] is True and view["hash"] and view["explanation"]
    [policy] = view["determining_policies"]
    assert policy["id"] == "dataset.pipelines.read-write" and policy["file"] == "datasets.cedar"
    assert 'action in [App::Action::"read", App::Action::"write"]' in policy["text"]
    assert policy["text"].lstrip().startswith(("//", "@id"))

    r = await client.post(f"/v1/decisions/{allowed['decision_id']}/replay", headers=auditor)
    assert r.status_code == 200
    replay = r.json()
    assert replay["replayable"] is True and replay["reproduced"] is True
    assert replay["replayed"]["policies"] == ["dataset.pipelines.read-write"]
    assert replay["would_change"] is True and replay["current"]["decision"] == "deny"
    assert replay["current"]["reason_codes"] == ["policy.no_permit"]
    event = events(components, "audit.replay")[-1]
    assert event["detail"] == {"decision_id": allowed["decision_id"], "reproduced": True,
                               "would_change": True}


async def test_a_refused_credential_is_shown_but_not_replayable(client, auditor) -> None:
    refused = await decide(client, "junk")
    assert refused["reason_codes"] == ["identity.malformed"]
    view = (await client.get(f"/v1/decisions/{refused['decision_id']}", headers=auditor)).json()
    assert view["determining_policies"] == [] and view["credential"]["sha256"]
    replay = (await client.post(f"/v1/decisions/{refused['decision_id']}/replay",
                                headers=auditor)).json()
    assert replay["replayable"] is False and replay["reproduced"] is None
    assert "credentials are never logged" in replay["notes"][0]


async def test_replaying_an_unknown_decision_is_a_404_and_is_recorded(client, components,
                                                                      auditor) -> None:
    r = await client.post("/v1/decisions/nope/replay", headers=auditor)
    assert r.status_code == 404
    assert events(components, "audit.replay")[-1]["detail"] == {"decision_id": "nope",
                                                               "found": False}


async def test_verify_reports_an_intact_chain_then_names_the_first_broken_link(
        client, components, mint, auditor) -> None:
    token = mint(ETL)
    await decide(client, token)
    target = await decide(client, token, "write", "ledger")
    await decide(client, token)
    r = await client.get("/v1/audit/verify", headers=auditor)
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["checked"] >= 4
    assert events(components, "audit.verify")[-1]["detail"]["ok"] is True

    seq = components.log.get(target["decision_id"])["seq"]
    with sqlite3.connect(components.settings.sqlite_path) as conn:
        (text,) = conn.execute("SELECT record FROM decisions WHERE seq = ?", (seq,)).fetchone()
        record = json.loads(text)
        record["decision"] = "allow"  # someone rewrites history
        conn.execute("UPDATE decisions SET record = ? WHERE seq = ?", (json.dumps(record), seq))
    report = (await client.get("/v1/audit/verify", headers=auditor)).json()
    assert report["ok"] is False
    assert report["first_broken_seq"] == seq
    assert report["first_broken_decision_id"] == target["decision_id"]
    assert report["problem"] in ("hash mismatch", "index mismatch")


async def test_export_streams_every_record_in_log_order_as_jsonl_or_csv(
        client, components, mint, auditor) -> None:
    await decide(client, mint(ETL))
    r = await client.get("/v1/audit/export", params={"kind": "decision"}, headers=auditor)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in r.text.splitlines()]
    assert records and all(x["kind"] == "decision" for x in records)
    assert [x["seq"] for x in records] == sorted(x["seq"] for x in records)
    r = await client.get("/v1/audit/export", params={"format": "csv"}, headers=auditor)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["kind"] == "admin" and rows[0]["event"] == "bundle.load"
    assert any(row["policies"] == "dataset.pipelines.read-write" for row in rows)
    assert events(components, "audit.export")[-1]["detail"]["format"] == "csv"


async def test_identities_list_every_principal_with_counts_and_flags(
        client, components, mint, auditor) -> None:
    etl = mint(ETL)
    await decide(client, etl)
    await decide(client, etl, "write", "ledger")
    old = components.clock.now() - timedelta(days=200)
    components.log.append_sync({
        "decision_id": "retired-1", "kind": "decision",
        "timestamp": old.isoformat().replace("+00:00", "Z"),
        "principal": "spiffe://example.org/services/retired", "decision": "allow",
        "credential": {"issuer": "spiffe://example.org", "kind": "x509-svid",
                       "trust_domain": "example.org",
                       "issued_at": old.isoformat(),
                       "expires_at": (old + timedelta(days=30)).isoformat()},
        "reasons": [], "reason_codes": ["policy.permit"]})

    r = await client.get("/v1/identities", params={"long_lived_s": 120}, headers=auditor)
    assert r.status_code == 200
    report = r.json()
    by_id = {e["principal"]: e for e in report["identities"]}
    assert by_id[ETL]["requests"] == 2 and by_id[ETL]["denies"] == 1
    assert by_id[ETL]["credential_kinds"] == ["jwt-svid"]
    assert by_id[ETL]["longest_lifetime_s"] == 300 and by_id[ETL]["flags"] == ["long_lived"]
    retired = by_id["spiffe://example.org/services/retired"]
    assert retired["flags"] == ["stale", "long_lived"] and retired["longest_lifetime_s"] == 30 * 86400
    assert AUDITOR in by_id  # the auditor's own admin calls are decisions too
    flagged = (await client.get("/v1/identities", params={"flagged": "true"},
                                headers=auditor)).json()
    assert [e["principal"] for e in flagged["identities"]] == [
        "spiffe://example.org/services/retired"]
    assert events(components, "audit.query")[-1]["detail"]["view"] == "identities"


async def test_the_authenticated_pep_is_recorded_with_the_decision(client, components,
                                                                  mint) -> None:
    pep = "spiffe://example.org/peps/envoy"
    r = await client.post("/v1/authorize", json=body(mint(ETL)),
                          headers={"authorization": f"Bearer {mint(pep)}"})
    assert r.status_code == 200
    assert components.log.get(r.json()["decision_id"])["pep"] == pep


async def test_configured_redactions_are_erased_before_logging_and_listed(settings_for) -> None:
    components = build_components(settings_for(audit={"redact": ["/context/purpose",
                                                                 "/resource/attrs/owner"]}))
    try:
        app = create_app(components, watch=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://pdp") as client:
                token = components.dev_issuer.mint(ETL)
                d = await decide(client, token, context={"purpose": "card 4111-1111"})
        record = components.log.get(d["decision_id"])
        assert record["redacted"] == ["/context/purpose"]
        assert record["request"]["context"] == {}
        assert "4111" not in json.dumps(record)
    finally:
        components.close()


async def test_openapi_documents_the_auditor_endpoints(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ["/v1/decisions", "/v1/decisions/{decision_id}",
                 "/v1/decisions/{decision_id}/replay", "/v1/audit/verify", "/v1/audit/export",
                 "/v1/identities"]:
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["ReplayResult"]["examples"]
