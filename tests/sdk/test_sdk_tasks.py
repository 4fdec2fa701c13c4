"""The SDK's task credentials against the real PDP app (in process): the agents example
end to end, refusals as ExchangeRefused with the PDP's sentence, refresh before expiry."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
import pytest
from pdp_client import AsyncPDPClient, AsyncTaskCredentials, ExchangeRefused
from pdp_client.tasks import exchange

from context.clock import FixedClock
from pdp.components import build_components
from pdp.config import load_settings
from tests.conftest import MONDAY_10, REPO, asgi_client

pytestmark = pytest.mark.anyio
PLANNER = "spiffe://example.org/agents/planner"
SUMMARIZER = "spiffe://example.org/agents/summarizer"


def _example():
    path = REPO / "sdk" / "python" / "examples" / "agents_delegation.py"
    spec = importlib.util.spec_from_file_location("agents_delegation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def pdp(tmp_path: Path, bundle_copy):
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "s")
    parts = build_components(settings, clock=FixedClock(MONDAY_10))
    async with asgi_client(parts) as client:
        yield parts, client
    parts.close()


def _svid(parts, who: str, ttl_s: int = 3600) -> str:
    return parts.dev_issuer.mint(who, ttl_s=ttl_s, now=MONDAY_10)


async def test_the_agents_example_delegates_and_completion_kills_the_delegated_token(pdp):
    parts, pdp_http = pdp
    example = _example()
    authorizer = AsyncPDPClient("http://pdp", transport=pdp_http._transport)
    service = httpx.AsyncClient(transport=httpx.ASGITransport(
        app=example.make_service(authorizer)), base_url="http://datasets")
    async with service:
        seen = await example.run(pdp_http, service, planner_svid=_svid(parts, PLANNER),
                                 summarizer_svid=_svid(parts, SUMMARIZER))
    assert seen["planner"] == 200 and seen["summarizer"] == 200
    assert seen["after_completion"] == 401  # identity.revoked: the credential is dead
    task = parts.broker.tasks.get(seen["task_id"])
    assert task is not None and not task.live
    chains = [c.actor_chain for c in parts.broker.tasks.credentials(task.id)]
    assert sorted(chains) == [(), (SUMMARIZER,)]


async def test_a_refused_exchange_raises_with_the_sentence_and_decision_id(pdp):
    parts, pdp_http = pdp
    with pytest.raises(ExchangeRefused) as refused:
        async with AsyncTaskCredentials(pdp_http, identity=_svid(parts, PLANNER),
                                        audience="pdp", scope=["datasets:write"],
                                        purpose="try to write"):
            pass
    e = refused.value
    assert e.error == "access_denied" and e.status == 403
    assert e.reason_codes == ("policy.no_permit",)
    assert parts.log.get(e.decision_id)["decision"] == "deny"


async def test_the_source_exchanges_again_before_expiry_and_keeps_the_task(pdp):
    parts, pdp_http = pdp
    creds = AsyncTaskCredentials(pdp_http, identity=lambda: _svid(parts, PLANNER),
                                 audience="pdp", scope=["datasets:read"], purpose="refresh me",
                                 lifetime_s=120, refresh_before_s=60)
    async with creds:
        first = await creds.token()
        assert await creds.token() == first  # 120 s left: fresh enough
        creds.refresh_before_s = 121  # as if a minute had passed
        second = await creds.token()
        assert second != first
    assert [c.task_id for c in parts.broker.tasks.credentials(creds.task_id)] == [creds.task_id] * 2
    assert not parts.broker.tasks.get(creds.task_id).live


def test_the_sync_exchange_parses_refusals_and_sends_the_rfc8693_form() -> None:
    sent = {}

    def handler(request: httpx.Request) -> httpx.Response:
        sent.update(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(400, json={"error": "invalid_scope", "error_description": "wider",
                                         "decision_id": "d-1",
                                         "reason_codes": ["broker.scope_widened"]})

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://pdp") as http:
        with pytest.raises(ExchangeRefused) as refused:
            exchange(http, subject_token="t", audience="pdp", scope=["a", "b"], task_id="T",
                     purpose="p", actor_token="actor")
    assert refused.value.reason_codes == ("broker.scope_widened",)
    assert sent["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert sent["scope"] == "a b" and sent["actor_token"] == "actor"
    assert json.loads(sent["authorization_details"]) == [
        {"type": "urn:pdp:task", "task_id": "T", "purpose": "p"}]
