"""The console over ASGI: sign-in, each page, authorization by the bundle, CSRF, sessions."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.console.conftest import AUDITOR, ETL, ORIGIN, SRE, csrf_of

pytestmark = pytest.mark.anyio

LEDGER = {"type": "App::Dataset", "id": "ledger"}
SALES = {"type": "App::Dataset", "id": "sales-daily"}


async def test_unauthenticated_is_sent_to_sign_in_and_sees_nothing(client: httpx.AsyncClient):
    for path in ("/console/decisions", "/console/overview", "/console/context",
                 "/console/integrity", "/console/policies", "/console/identities",
                 "/console/decisions.jsonl"):
        answer = await client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/signin?next=")
    page = await client.get("/console/signin")
    assert page.status_code == 200
    assert AUDITOR in page.text  # the dev sign-in lists the bundle's workloads by group
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp  # no third-party origin
    assert page.headers["x-frame-options"] == "DENY"


async def test_static_assets_are_served_from_the_package(client: httpx.AsyncClient):
    for name in ("htmx.min.js", "chart.umd.min.js", "console.js", "console.css"):
        answer = await client.get(f"/console/static/{name}")
        assert answer.status_code == 200 and len(answer.content) > 500, name


async def test_auditor_searches_opens_replays_and_exports(client, sign_in, decide, components):
    denied = await decide(ETL, "write", LEDGER)
    allowed = await decide(ETL, "read", SALES)
    csrf = await sign_in(AUDITOR)
    page = await client.get("/console/decisions", params={"decision": "deny",
                                                          "principal_prefix": ETL})
    assert page.status_code == 200
    assert denied["decision_id"] in page.text and allowed["decision_id"] not in page.text
    one = await client.get(f"/console/decisions/{denied['decision_id']}")
    assert one.status_code == 200
    assert "policy.no_permit" in one.text and "example.org" in one.text
    replay = await client.post(f"/console/decisions/{denied['decision_id']}/replay",
                               headers={**ORIGIN, "hx-request": "true"}, data={"csrf": csrf})
    assert replay.status_code == 200 and "reproduced" in replay.text
    export = await client.get("/console/decisions.jsonl", params={"decision": "deny",
                                                                  "principal": ETL})
    assert export.status_code == 200
    lines = [json.loads(x) for x in export.text.splitlines()]
    assert [r["decision_id"] for r in lines] == [denied["decision_id"]]
    # looking leaves a trace: the console's reads are audit events naming the auditor
    from pdp.audit.query import DecisionFilter
    events = components.log.query(DecisionFilter(kind="admin", principal=AUDITOR), 100).records
    assert {"audit.query", "audit.replay", "audit.export"} <= {e.get("event") for e in events}
    asked = components.log.query(DecisionFilter(pep="console"), 100).records
    assert asked and all(r["principal"] == AUDITOR for r in asked)


async def test_cursor_paging_keeps_the_filters(client, sign_in, decide):
    ids = [(await decide(ETL, "write", LEDGER))["decision_id"] for _ in range(3)]
    await sign_in(AUDITOR)
    first = await client.get("/console/decisions", params={"principal": ETL, "limit": 2})
    assert ids[2] in first.text and ids[1] in first.text and ids[0] not in first.text
    more = first.text.split('id="more"')[1].split('href="')[1].split('"')[0].replace("&amp;", "&")
    assert f"principal={ETL.replace(':', '%3A').replace('/', '%2F')}" in more
    second = await client.get(more, headers={"hx-request": "true"})
    assert ids[0] in second.text and ids[2] not in second.text


async def test_replay_without_the_csrf_token_changes_nothing(client, sign_in, decide):
    denied = await decide(ETL, "write", LEDGER)
    await sign_in(AUDITOR)
    for headers, data in ((ORIGIN, {}), (ORIGIN, {"csrf": "forged"}),
                          ({"origin": "http://evil.example"}, None)):
        answer = await client.post(f"/console/decisions/{denied['decision_id']}/replay",
                                   headers=headers, data=data or {})
        assert answer.status_code == 403
        assert "CSRF" in answer.text


async def test_a_workload_sees_nothing(client, sign_in):
    await client.post("/console/signin/dev", headers=ORIGIN, data={"principal": ETL})
    for path in ("/console/decisions", "/console/overview", "/console/context"):
        answer = await client.get(path)
        assert answer.status_code == 403, path
        assert "Forbidden" in answer.text
    # the refusal is itself in the log
    assert "pdp_console" in client.cookies


async def test_dev_sign_in_refuses_unknown_identities_and_foreign_pages(client):
    bad = await client.post("/console/signin/dev", headers=ORIGIN,
                            data={"principal": "spiffe://example.org/not-in-bundle"})
    assert bad.status_code == 400 and "pdp_console" not in client.cookies
    cross = await client.post("/console/signin/dev", headers={"origin": "http://evil.example"},
                              data={"principal": AUDITOR})
    assert cross.status_code == 403 and "pdp_console" not in client.cookies
    away = await client.post("/console/signin/dev", headers=ORIGIN,
                             data={"principal": AUDITOR, "next": "https://evil.example/x"})
    assert away.headers["location"] == "/console/decisions"


async def test_sre_declares_an_incident_that_authorize_sees_then_ends_it(client, sign_in,
                                                                         decide):
    csrf = await sign_in(SRE)
    declared = await client.post("/console/context/incidents", headers=ORIGIN, data={
        "csrf": csrf, "scope": "global", "level": "3", "reason": "db breach drill"})
    assert declared.status_code == 303, declared.text
    page = await client.get("/console/context")
    assert "db breach drill" in page.text
    during = await decide(ETL, "read", SALES)
    assert during["decision"] == "deny" and during["context"]["incident_level"] == 3
    assert during["reasons"][0]["policy"] == "guard.incident.critical-lockdown"
    incident_id = page.text.split("/context/incidents/")[1].split("/end")[0]
    ended = await client.post(f"/console/context/incidents/{incident_id}/end", headers=ORIGIN,
                              data={"csrf": csrf_of(page.text)})
    assert ended.status_code == 303
    assert "No incident in force" in (await client.get("/console/context")).text
    after = await decide(ETL, "read", SALES)
    assert after["decision"] == "allow" and after["context"]["incident_level"] == 0


async def test_an_auditor_may_not_declare_an_incident(client, sign_in):
    csrf = await sign_in(AUDITOR)
    answer = await client.post("/console/context/incidents", headers=ORIGIN, data={
        "csrf": csrf, "reason": "not mine to declare"})
    assert answer.status_code == 403 and "Forbidden" in answer.text


async def test_sign_out_ends_the_session_for_good(client, sign_in):
    csrf = await sign_in(AUDITOR)
    cookie = client.cookies["pdp_console"]
    out = await client.post("/console/signout", headers=ORIGIN, data={"csrf": csrf})
    assert out.status_code == 303
    client.cookies.set("pdp_console", cookie, path="/console")  # replay the old cookie
    assert (await client.get("/console/decisions")).status_code == 303


async def test_forged_and_expired_sessions_are_refused(client, sign_in, components):
    client.cookies.set("pdp_console", "forged-" + "A" * 40, path="/console")
    assert (await client.get("/console/decisions")).status_code == 303
    await sign_in(AUDITOR)
    store = client._transport.app.state.console_sessions  # type: ignore[attr-defined]
    from datetime import timedelta
    store.idle = timedelta(0)  # every session is now past its idle time
    assert (await client.get("/console/decisions")).status_code == 303
    assert len(store) == 0


async def test_overview_integrity_identities_policies_render(client, sign_in, decide):
    await decide(ETL, "write", LEDGER)
    await decide(ETL, "read", SALES)
    csrf = await sign_in(AUDITOR)
    overview = await client.get("/console/overview")
    assert overview.status_code == 200 and 'id="chart-data"' in overview.text
    assert "policy.no_permit" in overview.text and ETL in overview.text
    verify = await client.post("/console/integrity/verify", headers=ORIGIN, data={"csrf": csrf})
    assert verify.status_code == 200 and "Chain verified" in verify.text
    idents = await client.get("/console/identities")
    assert idents.status_code == 200 and ETL in idents.text
    one = await client.get(f"/console/identities/{ETL}")
    assert one.status_code == 200 and "pipelines" in one.text
    policies = await client.get("/console/policies")
    assert policies.status_code == 200 and "dataset.pipelines.read-write" in policies.text
    assert "never fired" in policies.text


async def test_integrity_shows_an_edited_overview_rollup(client, sign_in, decide, components):
    """The chain intact but a chart's hourly count edited: "verify now" says so, with the
    hour, expected vs stored, and the repair command."""
    import sqlite3
    from contextlib import closing

    from pdp.audit import rollups

    await decide(ETL, "write", LEDGER)
    csrf = await sign_in(AUDITOR)
    rollups.catch_up_store(components.log)
    with closing(sqlite3.connect(components.settings.sqlite_path)) as conn:
        hour, deny = conn.execute(
            "SELECT hour, deny FROM overview_hourly WHERE deny > 0").fetchone()
        conn.execute("UPDATE overview_hourly SET deny = 0 WHERE hour = ?", (hour,))
        conn.commit()
    verify = await client.post("/console/integrity/verify", headers=ORIGIN, data={"csrf": csrf})
    assert verify.status_code == 200 and "Overview rollups altered" in verify.text
    assert hour in verify.text and f"overview_hourly deny={deny}" in verify.text
    assert "pdp audit rebuild-rollups" in verify.text


async def test_oidc_routes_without_a_provider_and_with_a_forged_callback(client):
    assert (await client.get("/console/oidc/login")).status_code == 404
    assert (await client.get("/console/oidc/callback", params={
        "state": "forged", "code": "x"})).status_code == 404
    assert "pdp_console" not in client.cookies


async def test_docs_work_offline(client: httpx.AsyncClient):
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text and "https://" not in page.text.split("<body>")[0]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/console/static/swagger/{asset}" in page.text
        assert (await client.get(f"/console/static/swagger/{asset}")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200


async def test_the_overview_as_json_agrees_with_the_page(client, components, decide):
    await decide(ETL, "write", LEDGER)
    assert components.dev_issuer is not None
    headers = {"authorization": f"Bearer {components.dev_issuer.mint(AUDITOR)}"}
    since, until = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
    answer = await client.get("/v1/audit/overview", headers=headers,
                              params={"since": since, "until": until})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["denies"] >= 1 and ["policy.no_permit", 1] in body["top_reasons"]
    bad = await client.get("/v1/audit/overview", headers=headers,
                           params={"since": until, "until": since})
    assert bad.status_code == 400
    etl = {"authorization": f"Bearer {components.dev_issuer.mint(ETL)}"}
    assert (await client.get("/v1/audit/overview", headers=etl,
                             params={"since": since, "until": until})).status_code == 403


async def test_markup_in_logged_values_is_shown_as_text(client, sign_in, decide):
    evil = '<img src=x onerror="alert(1)">'
    denied = await decide(ETL, "read", {"type": "App::Dataset", "id": evil})
    await sign_in(AUDITOR)
    for path in ("/console/decisions", f"/console/decisions/{denied['decision_id']}"):
        page = await client.get(path)
        assert page.status_code == 200
        assert evil not in page.text and "&lt;img src=x" in page.text
    search = await client.get("/console/decisions", params={"resource": evil})
    assert evil not in search.text  # the filter echoed into the form is escaped too


async def test_one_principals_inventory_read_by_index_equals_its_entry_in_the_whole(
        client, components, decide):
    for _ in range(3):
        await decide(ETL, "write", LEDGER)
    await decide(ETL, "read", SALES)
    await decide(AUDITOR, "read", SALES)
    bearer = {"authorization": f"Bearer {components.dev_issuer.mint(AUDITOR)}"}
    whole = (await client.get("/v1/identities", headers=bearer)).json()
    one = (await client.get("/v1/identities", params={"principal": ETL}, headers=bearer)).json()
    [entry] = [e for e in whole["identities"] if e["principal"] == ETL]
    assert one["identities"] == [entry] and entry["requests"] == 4 and entry["denies"] == 3
    none = await client.get("/v1/identities", params={"principal": "spiffe://x/none"},
                            headers=bearer)
    assert none.json()["identities"] == []
