"""The sync and async clients against a real `pdp serve` process."""

from __future__ import annotations

import pytest
from pdp_client import (
    PDP_REJECTED,
    AsyncPDPClient,
    Decision,
    Item,
    PDPClient,
    PDPResponseError,
    Resource,
)


def test_sync_client_gets_allow_and_deny_with_their_reasons(pdp_server, mint) -> None:
    with PDPClient(pdp_server.url) as pdp:
        allow = pdp.authorize(token=mint(), action="read",
                              resource=("App::Dataset", "sales-daily"))
        deny = pdp.authorize(token=mint(), action="write", resource=Resource("App::Dataset", "ledger"))
    assert allow.allowed and allow.decision_id and not allow.cached
    assert allow.reasons[0].policy == "dataset.pipelines.read-write"
    assert allow.principal == 'Pdp::Workload::"spiffe://example.org/services/etl"'
    assert allow.valid_until > allow.timestamp and allow.context_version
    assert not deny.allowed and deny.reason_codes == ("policy.no_permit",)
    assert deny.explanation.startswith("Denied: no policy permits")
    assert deny.as_dict()["decision_id"] == deny.decision_id


@pytest.mark.anyio
async def test_async_client_gets_the_same_answers(pdp_server, mint) -> None:
    async with AsyncPDPClient(pdp_server.url) as pdp:
        allow = await pdp.authorize(token=mint(), action="read",
                                    resource={"type": "App::Dataset", "id": "sales-daily"})
        deny = await pdp.authorize(token=mint(), action="write", resource=("App::Dataset", "ledger"),
                                   request_id="sdk-async-1")
    assert allow.allowed and not deny.allowed


def test_batch_answers_in_order_across_several_pdp_calls(pdp_server, mint) -> None:
    items = [Item("read", ("App::Dataset", "sales-daily")), ("write", ("App::Dataset", "ledger"))]
    items += [("read", ("App::Dataset", f"other-{i}"), {"purpose": "report"}) for i in range(103)]
    with PDPClient(pdp_server.url) as pdp:
        decisions = pdp.authorize_batch(token=mint(), items=items)
    assert len(decisions) == 105
    assert [d.decision for d in decisions[:2]] == ["allow", "deny"]
    assert all(isinstance(d, Decision) and d.decision_id for d in decisions)
    assert len({d.decision_id for d in decisions}) == 105


@pytest.mark.anyio
async def test_async_batch(pdp_server, mint) -> None:
    async with AsyncPDPClient(pdp_server.url) as pdp:
        decisions = await pdp.authorize_batch(token=mint(), items=[
            ("read", ("App::Dataset", "ledger")), ("read", ("App::Dataset", "sales-daily"))])
    assert [d.allowed for d in decisions] == [False, True]


def test_a_request_the_pdp_refuses_is_a_deny_by_default_and_an_error_on_request(
        pdp_server, mint) -> None:
    huge = ("App::Dataset", "x" * 5000)
    with PDPClient(pdp_server.url) as pdp:
        d = pdp.authorize(token=mint(), action="read", resource=huge)
    assert not d.allowed and d.reason_codes == (PDP_REJECTED,) and d.made_by_sdk
    assert "422" in d.explanation
    with PDPClient(pdp_server.url, on_failure="raise") as pdp, pytest.raises(PDPResponseError) as e:
        pdp.authorize(token=mint(), action="read", resource=huge)
    assert e.value.status == 422 and e.value.code == PDP_REJECTED


def test_a_subject_needs_exactly_one_credential(pdp_server) -> None:
    with PDPClient(pdp_server.url) as pdp, pytest.raises(ValueError, match="exactly one"):
        pdp.authorize(action="read", resource=("App::Dataset", "x"))
