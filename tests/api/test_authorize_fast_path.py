"""The fast path (pdp.api.fastpath) and the FastAPI routes answer alike: one function each.

``POST /v1/authorize`` and AuthZEN's ``POST /access/v1/evaluation`` are answered by
the middleware before FastAPI's routing; their routes call the same function. The
property test sends generated requests (good and bad PEP credentials, content types,
subjects, reserved context keys, broken bytes) both ways and compares the status,
headers, body and the records written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.api import authorize as authorize_module
from pdp.api import authzen as authzen_module
from pdp.api.authorize import AUTHORIZE_PATH
from pdp.api.authzen import EVALUATION_PATH
from pdp.api.fastpath import POST_PATHS
from pdp.components import build_components
from tests.identity.workloads import TrustDomain, app_client, settings_for

pytestmark = pytest.mark.anyio

ENVOY = "spiffe://example.org/peps/envoy"


def body(token: str, **extra: Any) -> dict[str, Any]:
    return {"subject": {"token": token}, "action": "read",
            "resource": {"type": "App::Dataset", "id": "sales-daily"}, **extra}


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which way each ``POST /v1/authorize`` went: ``fast`` (the middleware) or ``route``."""
    seen: list[str] = []
    shared = authorize_module.answer_authorize

    def spy(way: str) -> Callable[..., Any]:
        async def answer(*args: Any) -> Any:
            seen.append(way)
            return await shared(*args)
        return answer

    monkeypatch.setitem(POST_PATHS, AUTHORIZE_PATH, spy("fast"))
    monkeypatch.setattr(authorize_module, "answer_authorize", spy("route"))
    return seen


@contextmanager
def route_only(path: str) -> Iterator[None]:
    """Requests to ``path`` pass the fast path by, to the FastAPI route."""
    answer = POST_PATHS.pop(path)
    try:
        yield
    finally:
        POST_PATHS[path] = answer


async def test_a_well_formed_request_is_answered_by_the_fast_path(client, mint,
                                                                  taken: list[str]) -> None:
    r = await client.post("/v1/authorize", json=body(mint()), headers={"x-request-id": "req-7"})
    assert taken == ["fast"]
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"] == "req-7"
    d = r.json()
    assert d["decision"] == "allow" and d["reason_codes"] == ["policy.permit"]
    assert set(d) >= {"decision_id", "principal", "reasons", "explanation", "policy_version",
                      "context", "valid_until"}


@pytest.mark.parametrize(("content", "status"), [
    (b'{"subject": ', 400),  # malformed JSON
    (b"", 400),  # no body at all
    (b'{"action": "read", "resource": {"type": "App::Dataset", "id": "x"}}', 422),  # no subject
])
async def test_bad_bodies_get_their_problem_answer_from_the_fast_path_too(
        client, taken: list[str], content: bytes, status: int) -> None:
    r = await client.post("/v1/authorize", content=content,
                          headers={"content-type": "application/json", "x-request-id": "r-1"})
    assert taken == ["fast"]
    assert r.status_code == status and r.headers["x-request-id"] == "r-1"
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_body_that_is_not_json_is_415(client, mint) -> None:
    r = await client.post("/v1/authorize", content=json.dumps(body(mint())),
                          headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.headers["content-type"] == "application/problem+json"


async def test_a_reserved_context_key_is_the_same_400_on_every_door(client, mint) -> None:
    token = mint()
    single = await client.post("/v1/authorize", json=body(token, context={"live": {}}))
    batch = await client.post("/v1/authorize/batch", json={
        "subject": {"token": token},
        "items": [{"action": "read", "resource": {"type": "App::Dataset", "id": "x"},
                   "context": {"live": {}}}]})
    evaluation = await client.post(EVALUATION_PATH, json={
        "subject": {"type": "Pdp::Workload", "id": "spiffe://example.org/services/etl",
                    "properties": {"token": token}},
        "action": {"name": "read"}, "resource": {"type": "App::Dataset", "id": "x"},
        "context": {"live": {}}})
    answers = [single.json(), batch.json(), evaluation.json()]
    assert [r.status_code for r in (single, batch, evaluation)] == [400, 400, 400]
    assert {a["title"] for a in answers} == {"Reserved context attribute"}
    assert [a["errors"][0]["field"] for a in answers] == \
        ["context.live", "items.0.context.live", "context.live"]


async def test_the_body_limit_still_applies_before_the_fast_path(client, mint,
                                                                 taken: list[str]) -> None:
    r = await client.post("/v1/authorize", json=body(mint(), context={"pad": "x" * 8000}))
    assert r.status_code == 413 and taken == []


async def test_valid_until_never_exceeds_the_token_expiry(client, mint) -> None:
    d = (await client.post("/v1/authorize", json=body(mint(ttl_s=60)))).json()
    from datetime import datetime

    valid_until = datetime.fromisoformat(d["valid_until"])
    now = datetime.fromisoformat(d["timestamp"])
    assert 0 < (valid_until - now).total_seconds() <= 61


async def test_the_route_serves_when_the_fast_path_passes_it_by(client, mint,
                                                                taken: list[str]) -> None:
    with route_only(AUTHORIZE_PATH):
        r = await client.post("/v1/authorize", json=body(mint()))
    assert taken == ["route"] and r.status_code == 200 and r.json()["decision"] == "allow"


# --- the property: both ways answer alike ----------------------------------------------


@pytest.fixture(scope="module")
def td() -> TrustDomain:
    return TrustDomain("example.org")


@pytest.fixture
def guarded(tmp_path: Path, td: TrustDomain) -> Iterator[Any]:
    """An enforced PEP allowlist (only Envoy), so that PEP refusals are real refusals."""
    parts = build_components(settings_for(tmp_path, td, pep_allowlist=[ENVOY]))
    yield parts
    parts.close()


# Volatile parts: ids, clocks, hashes, the live snapshot (its `now`), and the diagnosis
# (it may quote `now`); everything else must be equal.
_VOLATILE_BODY = {"decision_id", "timestamp", "valid_until", "context", "diagnosis"}
_VOLATILE_RECORD = _VOLATILE_BODY | {"seq", "hash", "prev_hash", "latency_us", "live",
                                     "credential_context", "credential"}


def _comparable(response: Any) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    try:
        content: Any = response.json()
    except ValueError:
        return response.status_code, headers, response.content
    if isinstance(content, dict):
        content = {k: v for k, v in content.items() if k not in _VOLATILE_BODY}
        if isinstance(content.get("context"), dict):  # AuthZEN's reasons: id is volatile
            content["context"].pop("id", None)
    return response.status_code, headers, content


def _records(components: Any, since: int) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in _VOLATILE_RECORD}
            for r in list(components.log.iter_all())[since:]]


_SUBJECTS = st.sampled_from(["etl", "expired", "garbage", "x509", "both", "none", "number"])
_CONTEXTS = st.sampled_from([None, {}, {"live": {}}, {"credential": 1}, {"purpose": "report"},
                             {"purpose": 7}])
_PEPS = st.sampled_from(["envoy", "not-listed", "forged", "none", "basic", "empty"])
_CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8",
                                  "application/problem+json", "text/plain", None])
_BYTES = st.sampled_from(["json", "truncated", "empty", "array", "surrogate"])


def _token(td: TrustDomain, kind: str) -> Any:
    return {"etl": lambda: td.jwt_svid("/services/etl"),
            "expired": lambda: td.jwt_svid("/services/etl", ttl_s=60, age_s=3600),
            "garbage": lambda: "not-a-jwt",
            "number": lambda: 7}[kind]()


def _request(td: TrustDomain, door: str, subject: str, action: Any, dataset: str,
             context: Any, explain: Any) -> dict[str, Any]:
    if subject in ("etl", "expired", "garbage", "number"):
        credential: dict[str, Any] = {"token": _token(td, subject)}
    elif subject == "x509":
        credential = {"x509": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}
    elif subject == "both":
        credential = {"token": "a", "x509": "b"}
    else:
        credential = {}
    if door == AUTHORIZE_PATH:
        out: dict[str, Any] = {"subject": credential, "action": action,
                               "resource": {"type": "App::Dataset", "id": dataset}}
        if explain is not None:
            out["explain"] = explain
    else:
        out = {"subject": {"type": "Pdp::Workload", "id": "spiffe://example.org/services/etl",
                           "properties": credential},
               "action": {"name": action}, "resource": {"type": "App::Dataset", "id": dataset}}
        if explain is not None:
            out["options"] = {"include_reasons": explain}
    if context is not None:
        out["context"] = context
    return out


def _encoded(value: dict[str, Any], form: str) -> bytes:
    raw = json.dumps(value).encode()
    return {"json": raw, "truncated": raw[: len(raw) // 2], "empty": b"", "array": b"[]",
            "surrogate": raw[:-1] + b',"x":"\\udfff"}'}[form]


def _pep_headers(td: TrustDomain, pep: str) -> dict[str, str]:
    forged = TrustDomain("example.org")  # the same name, another (untrusted) key
    return {"envoy": {"authorization": f"Bearer {td.jwt_svid('/peps/envoy')}"},
            "not-listed": {"authorization": f"Bearer {td.jwt_svid('/services/etl')}"},
            "forged": {"authorization": f"Bearer {forged.jwt_svid('/peps/envoy')}"},
            "none": {}, "basic": {"authorization": "Basic ZW52b3k6c2VjcmV0"},
            "empty": {"authorization": "Bearer "}}[pep]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(door=st.sampled_from([AUTHORIZE_PATH, EVALUATION_PATH]), pep=_PEPS,
       content_type=_CONTENT_TYPES, subject=_SUBJECTS,
       action=st.sampled_from(["read", "write", "obliterate", 7, ""]),
       dataset=st.sampled_from(["sales-daily", "ledger", "nope"]), context=_CONTEXTS,
       explain=st.sampled_from([None, True, "yes"]), form=_BYTES)
async def test_the_fast_path_and_the_route_answer_alike(
        guarded: Any, td: TrustDomain, door: str, pep: str, content_type: str | None,
        subject: str, action: Any, dataset: str, context: Any, explain: Any,
        form: str) -> None:
    content = _encoded(_request(td, door, subject, action, dataset, context, explain), form)
    headers = {**_pep_headers(td, pep), "x-request-id": "prop-1"}
    if content_type is not None:
        headers["content-type"] = content_type
    answers, written = [], []
    async with app_client(guarded, lifespan=False) as client:
        for fast in (True, False):
            before = sum(1 for _ in guarded.log.iter_all())
            if fast:
                r = await client.post(door, content=content, headers=headers)
            else:
                with route_only(door):
                    r = await client.post(door, content=content, headers=headers)
            answers.append(_comparable(r))
            written.append(_records(guarded, before))
    assert answers[0] == answers[1]
    assert written[0] == written[1]
    assert answers[0][0] < 500


async def test_the_evaluation_fast_path_answers_like_its_route(client, mint) -> None:
    request = {"subject": {"type": "Pdp::Workload", "id": "spiffe://example.org/services/etl",
                           "properties": {"token": mint()}},
               "action": {"name": "read"}, "resource": {"type": "App::Dataset", "id": "sales-daily"}}
    fast = await client.post(EVALUATION_PATH, json=request)
    with route_only(EVALUATION_PATH):
        routed = await client.post(EVALUATION_PATH, json=request)
    assert fast.status_code == routed.status_code == 200
    assert fast.json() == routed.json() == {"decision": True}
    assert POST_PATHS[EVALUATION_PATH] is authzen_module.answer_evaluation
