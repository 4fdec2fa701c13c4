"""A decision's live context is rendered once, for its record and its answer alike
(``Decision.context``): the memo must never show another snapshot or let the answer
change the record."""

from __future__ import annotations

from dataclasses import replace

import pytest

from context.model import LiveSnapshot
from tests.api.test_authorize import body

pytestmark = pytest.mark.anyio


async def test_the_answer_and_the_record_show_the_snapshot_as_rendered_fresh(
        client, components, mint) -> None:
    components.live.risk_level = 2  # a snapshot that is not the default one
    answer = (await client.post("/v1/authorize", json=body(mint()))).json()
    record = components.log.get(answer["decision_id"])
    assert record is not None
    fresh = LiveSnapshot.from_dict(record["live"]).as_dict()  # cold: no memo involved
    assert answer["context"] == record["live"] == fresh
    assert answer["context"]["risk_level"] == 2


async def test_each_decision_renders_its_own_snapshot(client, components, mint) -> None:
    """A memo kept beyond its decision (on the service, per principal) would show the
    first risk level to the second request."""
    first = (await client.post("/v1/authorize", json=body(mint()))).json()
    components.live.risk_level = 3
    second = (await client.post("/v1/authorize", json=body(mint()))).json()
    assert first["context"]["risk_level"] == 0 and second["context"]["risk_level"] == 3
    assert components.log.get(second["decision_id"])["live"]["risk_level"] == 3


async def test_the_snapshot_renders_once_per_decision_and_copies_start_afresh(
        components, mint, monkeypatch) -> None:
    from pdp.decision.model import AuthorizeInput, ResourceRef
    from pdp.identity.model import BearerToken

    renders: list[LiveSnapshot] = []
    as_dict = LiveSnapshot.as_dict

    def counted(self: LiveSnapshot) -> dict:
        renders.append(self)
        return as_dict(self)

    monkeypatch.setattr(LiveSnapshot, "as_dict", counted)
    decision = await components.service.authorize(AuthorizeInput(
        credential=BearerToken(mint()), action="read",
        resource=ResourceRef(type="App::Dataset", id="sales-daily"), context={}))
    rendered = decision.as_dict()["context"]  # the record already read it
    assert len(renders) == 1
    rendered["risk_level"] = 99  # the answer's dict changed after the record was appended
    assert components.log.get(decision.decision_id)["live"]["risk_level"] == 0

    assert decision.live is not None
    other = replace(decision, live=decision.live.with_overrides(risk_level=1))
    assert other.context is not None and other.context["risk_level"] == 1
