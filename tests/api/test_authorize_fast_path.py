"""POST /v1/authorize's fast path answers the common case; everything else reaches the route."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.api.authorize import AuthorizeFastPath

pytestmark = pytest.mark.anyio


def body(token: str, **extra: Any) -> dict[str, Any]:
    return {"subject": {"token": token}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}, **extra}


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the fast path answered each request (False: the FastAPI route did)."""
    seen: list[bool] = []
    original = AuthorizeFastPath._answer

    async def spy(self: AuthorizeFastPath, *args: Any) -> bool:
        result = await original(self, *args)
        seen.append(result)
        return result

    monkeypatch.setattr(AuthorizeFastPath, "_answer", spy)
    return seen


async def test_a_well_formed_request_is_answered_by_the_fast_path_like_the_route(
        client, mint, answered: list[bool]) -> None:
    r = await client.post("/v1/authorize", json=body(mint()), headers={"x-request-id": "req-7"})
    assert answered == [True]
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"] == "req-7"
    d = r.json()
    assert d["decision"] == "allow" and d["reason_codes"] == ["policy.permit"]
    assert set(d) >= {"decision_id", "principal", "reasons", "explanation", "policy_version",
                      "context", "valid_until"}


async def test_the_fast_path_and_the_route_give_the_same_answer(
        client, mint, monkeypatch: pytest.MonkeyPatch) -> None:
    token = mint()
    headers = {"x-request-id": "req-8"}
    fast = await client.post("/v1/authorize", json=body(token), headers=headers)

    async def decline(*_: Any) -> bool:
        return False

    monkeypatch.setattr(AuthorizeFastPath, "_answer", decline)  # the FastAPI route decides
    routed = await client.post("/v1/authorize", json=body(token), headers=headers)
    assert fast.status_code == routed.status_code == 200
    assert {k: v for k, v in fast.headers.items() if k != "content-length"} == \
        {k: v for k, v in routed.headers.items() if k != "content-length"}
    a, b = fast.json(), routed.json()
    for key in ("decision_id", "timestamp", "valid_until", "context"):
        a.pop(key), b.pop(key)
    assert a == b


@pytest.mark.parametrize(("content", "status"), [
    (b'{"subject": ', 400),  # malformed JSON
    (b'{"action": "read", "resource": {"type": "App::Dataset", "id": "x"}}', 422),  # no subject
])
async def test_bodies_the_model_refuses_get_the_routes_problem_answers(
        client, answered: list[bool], content: bytes, status: int) -> None:
    r = await client.post("/v1/authorize", content=content,
                          headers={"content-type": "application/json"})
    assert answered == [False]
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_reserved_context_key_gets_the_routes_400(client, mint,
                                                          answered: list[bool]) -> None:
    r = await client.post("/v1/authorize", json=body(mint(), context={"live": {}}))
    assert answered == [False]
    assert r.status_code == 400 and "context.live" in r.json()["detail"]


async def test_the_body_limit_still_applies_before_the_fast_path(client, mint,
                                                                 answered: list[bool]) -> None:
    r = await client.post("/v1/authorize", json=body(mint(), context={"pad": "x" * 8000}))
    assert r.status_code == 413 and answered == []
