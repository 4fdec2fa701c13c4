"""The live-context views: past incidents with their denied decisions, risk with its
evidence and decay, business hours, a principal's risk history — and that the history,
kept in the decision log, survives a restart."""

from __future__ import annotations

import asyncio
import html
import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings
from tests.conftest import POLICIES, asgi_client
from tests.console.conftest import AUDITOR, ETL, ORIGIN, SRE, csrf_of

pytestmark = pytest.mark.anyio

LEDGER = {"type": "App::Dataset", "id": "ledger"}
SALES = {"type": "App::Dataset", "id": "sales-daily"}
Start = Callable[[], AbstractAsyncContextManager[tuple[httpx.AsyncClient, Components]]]


@pytest.fixture
def start(tmp_path: Path) -> Start:
    """A dev server over one state directory; each call is a (re)start."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)

    @asynccontextmanager
    async def go() -> AsyncIterator[tuple[httpx.AsyncClient, Components]]:
        parts = build_components(load_settings(None, dev=True, policies=policies,
                                               state_dir=tmp_path / "state"))
        try:
            async with asgi_client(parts) as client:
                yield client, parts
        finally:
            parts.close()

    return go


async def _as(client: httpx.AsyncClient, principal: str) -> str:
    client.cookies.clear()
    answer = await client.post("/console/signin/dev", headers=ORIGIN,
                               data={"principal": principal, "next": "/console/decisions"})
    assert answer.status_code == 303
    return csrf_of((await client.get("/console/context")).text) if principal == SRE else ""


async def _decide(client: httpx.AsyncClient, parts: Components, principal: str, action: str,
                  resource: dict[str, str]) -> dict[str, Any]:
    assert parts.dev_issuer is not None
    answer = await client.post("/v1/authorize", json={
        "subject": {"token": parts.dev_issuer.mint(principal)}, "action": action,
        "resource": resource})
    body: dict[str, Any] = answer.json()
    return body


def _links(page: str, testid: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(
        rf'data-testid="{testid}" href="([^"]+)"', page)]


async def test_an_auditor_follows_a_past_incident_to_the_decisions_denied_during_it(
        start: Start) -> None:
    async with start() as (client, parts):
        before = await _decide(client, parts, ETL, "read", SALES)
        csrf = await _as(client, SRE)
        declared = await client.post("/console/context/incidents", headers=ORIGIN, data={
            "csrf": csrf, "scope": "global", "level": "3", "reason": "last night's breach"})
        assert declared.status_code == 303
        during = await _decide(client, parts, ETL, "read", SALES)
        assert during["decision"] == "deny"
        page = (await client.get("/console/context")).text
        incident_id = page.split("/context/incidents/")[1].split("/end")[0]
        await client.post(f"/console/context/incidents/{incident_id}/end", headers=ORIGIN,
                          data={"csrf": csrf_of(page)})
        after = await _decide(client, parts, ETL, "write", LEDGER)  # denied, but later
        assert after["decision"] == "deny"
        sre_view = (await client.get("/console/context")).text
        assert "last night&#39;s breach" in sre_view and "ended" in sre_view
        assert f"by <code>{SRE}</code>" in sre_view
    async with start() as (client, parts):  # a restart: the history is in the log
        await _as(client, AUDITOR)
        view = await client.get("/console/context")
        assert view.status_code == 200 and "may not read the live context" in view.text
        [link] = _links(view.text, "incident-denies")
        assert link.startswith("/console/decisions?decision=deny&since=")
        denied = (await client.get(link)).text
        assert during["decision_id"] in denied
        assert after["decision_id"] not in denied and before["decision_id"] not in denied
        assert "guard.incident.critical-lockdown" in (
            await client.get(f"/console/decisions/{during['decision_id']}")).text
        await _as(client, ETL)  # a workload sees neither part
        assert (await client.get("/console/context")).status_code == 403


async def test_raised_risk_shows_its_evidence_and_decay_and_its_history_survives_a_restart(
        start: Start) -> None:
    async with start() as (client, parts):
        denies = [await _decide(client, parts, ETL, "write", LEDGER) for _ in range(20)]
        assert all(d["decision"] == "deny" for d in denies)
        await _as(client, SRE)
        page = ""
        for _ in range(50):  # the raise is applied at once, recorded on its own thread
            page = (await client.get("/console/context")).text
            if "deny_burst" in page:
                break
            await asyncio.sleep(0.1)
        risk = page.split('data-testid="risk"')[1].split("</table>")[0]
        assert ETL in risk and "high" in risk and "<code>deny_burst</code>" in risk
        assert "20 denies in 60 s" in risk and "steps down to medium at" in risk
        assert denies[-1]["decision_id"] in risk  # the newest deny of the burst, linked
        assert re.search(r'data-testid="business-hours">(Open|Closed) now \(calendar UTC\); '
                         r"(closes|opens) at ", page)
        one = (await client.get(f"/console/identities/{ETL}")).text  # SRE: context.read
        assert 'data-testid="risk-now"' in one and "deny_burst" in one
        assert "may not read the decision log" in one
    async with start() as (client, parts):  # a restart: the history is in the log
        await _as(client, AUDITOR)
        one = (await client.get(f"/console/identities/{ETL}")).text
        assert "may not read live context" in one  # auditors: no context.read here
        rows = one.split('data-testid="risk-history"')[1].split("</table>")[0]
        assert "raised" in rows and "20 denies in 60 s" in rows
        assert denies[-1]["decision_id"] in rows
        assert 'id="risk-data"' in one and 'id="risk-history"' in one  # the chart and its data
        assert ETL in one.split("Latest decisions")[1]  # its decisions, for audit.read
