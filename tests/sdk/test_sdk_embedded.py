"""Embedded mode: the clients' interface, deciding in-process with the PDP engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI
from pdp_client import AsyncPDPClient, Decision, DecisionCache
from pdp_client.embedded import AsyncEmbeddedPDP, EmbeddedPDP
from pdp_client.fastapi import PDP

from context.state import Scope

ETL = "spiffe://example.org/services/etl"
DATASET = ("App::Dataset", "sales-daily")
PII = ("App::Dataset", "customer-pii")


@pytest.fixture
def embedded(tmp_path: Path, bundle_copy) -> Iterator[EmbeddedPDP]:
    with EmbeddedPDP(policies=bundle_copy(), dev=True, state_dir=tmp_path / "state",
                     watch_policies=False, cache=DecisionCache()) as pdp:
        yield pdp


def test_embedded_decides_in_process_and_logs_before_answering(embedded: EmbeddedPDP) -> None:
    token = embedded.components.dev_issuer.mint(ETL)
    allow = embedded.authorize(token=token, action="read", resource=DATASET)
    deny = embedded.authorize(token=token, action="write", resource=("App::Dataset", "ledger"))
    assert allow.allowed and allow.reasons[0].policy == "dataset.pipelines.read-write"
    assert not deny.allowed and deny.reason_codes == ("policy.no_permit",)
    record = embedded.components.log.get(allow.decision_id)
    assert record["decision"] == "allow" and record["pep"] == "embedded"
    assert embedded.authorize(token=token, action="read", resource=DATASET).cached


@pytest.mark.anyio
async def test_embedded_and_remote_give_the_same_answer(tmp_path: Path, bundle_copy) -> None:
    from pdp.server import create_app

    async with AsyncEmbeddedPDP(policies=bundle_copy(), dev=True, state_dir=tmp_path / "s",
                                watch_policies=False) as local:
        token = local.components.dev_issuer.mint(ETL)
        app = create_app(local.components, watch=False)
        async with AsyncPDPClient("http://pdp", transport=httpx.ASGITransport(app=app)) as remote:
            for action, resource in [("read", DATASET), ("write", ("App::Dataset", "ledger")),
                                      ("fly", DATASET)]:
                a = await local.authorize(token=token, action=action, resource=resource)
                b = await remote.authorize(token=token, action=action, resource=resource)
                assert (a.decision, a.reason_codes, a.principal, a.action, a.resource,
                        [r.policy for r in a.reasons]) == \
                       (b.decision, b.reason_codes, b.principal, b.action, b.resource,
                        [r.policy for r in b.reasons])
        batch = await local.authorize_batch(token=token, items=[("read", DATASET),
                                                                ("read", ("App::Dataset", "ledger"))])
    assert [d.allowed for d in batch] == [True, False]


def test_an_incident_flip_invalidates_the_embedded_cache_at_once(embedded: EmbeddedPDP) -> None:
    token = embedded.components.dev_issuer.mint(ETL)
    assert embedded.authorize(token=token, action="write", resource=PII).allowed
    assert embedded.authorize(token=token, action="write", resource=PII).cached
    embedded.components.live.declare_incident(scope=Scope.parse("global"), level=2,
                                              reason="drill", now=embedded.components.clock.now())
    after = embedded.authorize(token=token, action="write", resource=PII)
    assert not after.cached and not after.allowed


@pytest.mark.anyio
async def test_a_fastapi_service_can_use_the_embedded_pdp(embedded: EmbeddedPDP) -> None:
    pdp = PDP(embedded, namespace="App")
    app = FastAPI()

    @app.get("/datasets/{name}")
    async def read(name: str, d: Decision = Depends(pdp.require(
            "read", resource=lambda req: ("Dataset", req.path_params["name"])))) -> dict:
        return {"decision_id": d.decision_id}

    token = embedded.components.dev_issuer.mint(ETL)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://service") as service:
        ok = await service.get("/datasets/sales-daily", headers={"authorization": f"Bearer {token}"})
        no = await service.get("/datasets/ledger", headers={"authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and no.status_code == 403
