"""When the PDP cannot answer, the client denies (pdp.unreachable) instead of raising.

Connection errors are retried (the request never reached the PDP); read
errors and HTTP errors are not.
"""

from __future__ import annotations

import httpx
import pytest

from pdp_client import (
    PDP_ERROR, PDP_UNREACHABLE, AsyncPDPClient, Decision, DecisionCache, PDPClient,
    PDPUnreachable,
)
from tests.server import free_port

DATASET = ("App::Dataset", "sales-daily")


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_an_unreachable_pdp_is_a_deny_not_an_exception() -> None:
    cache = DecisionCache()
    with PDPClient(closed_port_url(), retries=1, backoff_s=0, cache=cache) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.decision == "deny" and not d.allowed
    assert d.reason_codes == (PDP_UNREACHABLE,) and d.decision_id is None and d.made_by_sdk
    assert "could not be reached" in d.explanation and "failing closed" in d.explanation
    assert len(cache) == 0  # a fail-closed deny is never cached


@pytest.mark.anyio
async def test_the_async_client_fails_closed_too() -> None:
    async with AsyncPDPClient(closed_port_url(), retries=0) as pdp:
        d = await pdp.authorize(token="t", action="read", resource=DATASET)
        batch = await pdp.authorize_batch(token="t", items=[("read", DATASET)] * 3)
    assert d.reason_codes == (PDP_UNREACHABLE,)
    assert [b.reason_codes for b in batch] == [(PDP_UNREACHABLE,)] * 3


def test_fail_closed_can_raise_or_be_your_own_decision() -> None:
    with PDPClient(closed_port_url(), retries=0, on_failure="raise") as pdp:
        with pytest.raises(PDPUnreachable) as e:
            pdp.authorize(token="t", action="read", resource=DATASET)
    assert e.value.code == PDP_UNREACHABLE

    def mine(error: Exception) -> Decision:
        return Decision.fail_closed("my.service.pdp_down", f"try later ({error})")

    with PDPClient(closed_port_url(), retries=0, on_failure=mine) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == ("my.service.pdp_down",) and not d.allowed


def answering(allow: bool = True) -> dict:
    return {"decision": "allow" if allow else "deny", "decision_id": "d-1",
            "reason_codes": ["policy.permit"], "explanation": "ok", "reasons": [],
            "valid_until": "2026-01-05T10:05:00Z", "timestamp": "2026-01-05T10:00:00Z",
            "context": {"version": "v1"}}


def flaky(failures: list[Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """Raises each of ``failures`` in turn, then answers allow."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return httpx.Response(200, json=answering())

    return httpx.MockTransport(handler), calls


def test_connection_errors_are_retried() -> None:
    transport, calls = flaky([httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")])
    with PDPClient("http://pdp", retries=2, backoff_s=0, transport=transport) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.allowed and len(calls) == 3


def test_retries_stop_at_the_configured_number() -> None:
    transport, calls = flaky([httpx.ConnectError("refused")] * 5)
    with PDPClient("http://pdp", retries=2, backoff_s=0, transport=transport) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_UNREACHABLE,) and len(calls) == 3


@pytest.mark.parametrize("error", [httpx.ReadTimeout("slow answer"),
                                   httpx.RemoteProtocolError("hung up")])
def test_errors_after_the_request_was_sent_are_not_retried(error: Exception) -> None:
    transport, calls = flaky([error])
    with PDPClient("http://pdp", retries=3, backoff_s=0, transport=transport) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_UNREACHABLE,) and len(calls) == 1


@pytest.mark.anyio
async def test_async_retries_connection_errors_only() -> None:
    transport, calls = flaky([httpx.ConnectError("refused")])
    async with AsyncPDPClient("http://pdp", retries=1, backoff_s=0, transport=transport) as pdp:
        assert (await pdp.authorize(token="t", action="read", resource=DATASET)).allowed
    assert len(calls) == 2


@pytest.mark.parametrize("response", [
    httpx.Response(500, json={"title": "boom"}),
    httpx.Response(200, text="not json"),
    httpx.Response(200, json={"decision": "maybe"}),
])
def test_an_answer_that_is_not_a_decision_is_a_deny(response: httpx.Response) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return response

    with PDPClient("http://pdp", retries=3, transport=httpx.MockTransport(handler)) as pdp:
        d = pdp.authorize(token="t", action="read", resource=DATASET)
    assert d.reason_codes == (PDP_ERROR,) and not d.allowed and len(calls) == 1


def test_the_pep_token_and_request_id_are_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answering())

    tokens = iter(["pep-1", "pep-2"])
    with PDPClient("http://pdp", pep_token=lambda: next(tokens),
                   transport=httpx.MockTransport(handler)) as pdp:
        pdp.authorize(token="t", action="read", resource=DATASET, request_id="r-1")
        pdp.authorize(token="t", action="read", resource=DATASET)
    assert [r.headers.get("authorization") for r in seen] == ["Bearer pep-1", "Bearer pep-2"]
    assert seen[0].headers["x-request-id"] == "r-1" and "x-request-id" not in seen[1].headers
