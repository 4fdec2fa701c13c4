"""Bad bytes get a 4xx problem+json on every door, never a 500, and change nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.anyio

ETL = "spiffe://example.org/services/etl"
LONE = "\\udfff"  # a JSON escape for a lone low surrogate: not a Unicode scalar value


def authorize(token: str, *, context: str = "{}", attrs: str = "null") -> tuple[str, str]:
    return "/v1/authorize", (
        f'{{"subject":{{"token":"{token}"}},"action":"read",'
        f'"resource":{{"type":"App::Dataset","id":"sales-daily","attrs":{attrs}}},'
        f'"context":{context}}}')


def batch(token: str, *, context: str = "{}", attrs: str = "null") -> tuple[str, str]:
    return "/v1/authorize/batch", (
        f'{{"subject":{{"token":"{token}"}},"items":[{{"action":"read",'
        f'"resource":{{"type":"App::Dataset","id":"sales-daily","attrs":{attrs}}},'
        f'"context":{context}}}]}}')


def _az(token: str, context: str, attrs: str) -> str:
    return (f'"subject":{{"type":"Pdp::Workload","id":"{ETL}","properties":{{"token":"{token}"}}}},'
            f'"action":{{"name":"read"}},'
            f'"resource":{{"type":"App::Dataset","id":"sales-daily","properties":{attrs}}},'
            f'"context":{context}')


def evaluation(token: str, *, context: str = "{}", attrs: str = "null") -> tuple[str, str]:
    return "/access/v1/evaluation", "{" + _az(token, context, attrs) + "}"


def evaluations(token: str, *, context: str = "{}", attrs: str = "null") -> tuple[str, str]:
    return "/access/v1/evaluations", ("{" + _az(token, "{}", "null")
                                      + f',"evaluations":[{{"context":{context},'
                                        f'"resource":{{"properties":{attrs}}}}}]}}')


DOORS = [authorize, batch, evaluation, evaluations]
PLACES = {"context value": {"context": f'{{"purpose":"{LONE}"}}'},
          "context key": {"context": f'{{"{LONE}":1}}'},
          "resource attribute": {"attrs": f'{{"owner":"{LONE}"}}'}}


async def _records(components) -> int:
    return sum(1 for _ in components.log.iter_all())


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("place", PLACES)
async def test_a_lone_surrogate_is_a_400_problem_and_records_nothing(client, components, mint,
                                                                     door, place) -> None:
    path, raw = door(mint(ETL), **PLACES[place])
    before = await _records(components)
    r = await client.post(path, content=raw.encode(),
                          headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "surrogate" in r.json()["detail"]
    assert await _records(components) == before


@pytest.mark.parametrize("path", ["/v1/authorize", "/v1/authorize/batch",
                                  "/access/v1/evaluation", "/access/v1/evaluations"])
async def test_json_nested_a_thousand_deep_is_a_400_problem(client, path) -> None:
    r = await client.post(path, content=b"[" * 1000 + b"]" * 1000,
                          headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def _chunks(n: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b" " * 1024


@pytest.mark.parametrize("path", ["/v1/revocations", "/v1/context/incidents", "/v1/grants",
                                  "/v1/authorize", "/access/v1/evaluation"])
async def test_an_over_limit_chunked_body_is_413_on_every_endpoint(client, path) -> None:
    # The components fixture limits bodies to 4096 bytes; no content-length is sent.
    r = await client.post(path, content=_chunks(8), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("rid", ["a" * 129, "has space", "tab\there", "é", ""])
async def test_a_malformed_request_id_is_refused_with_400(client, components, mint, rid) -> None:
    before = await _records(components)
    path, raw = authorize(mint(ETL))
    r = await client.post(path, content=raw.encode(),
                          headers={"content-type": "application/json",
                                   "x-request-id": rid.encode("utf-8")})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "X-Request-ID" in r.json()["detail"]
    assert await _records(components) == before


async def test_a_request_id_of_128_visible_characters_is_echoed_and_logged(client, components,
                                                                          mint) -> None:
    rid = "r-" + "x" * 126
    r = await client.post("/v1/authorize", json=json.loads(authorize(mint(ETL))[1]),
                          headers={"x-request-id": rid})
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    assert components.log.get(r.json()["decision_id"])["request_id"] == rid


async def test_headers_over_the_limit_are_431(client) -> None:
    r = await client.get("/healthz", headers={"x-filler": "y" * 140_000})
    assert r.status_code == 431
    assert r.headers["content-type"] == "application/problem+json"


async def test_oversized_headers_are_431_before_a_bad_request_id_or_body_is_looked_at(
        client) -> None:
    """The limits' order: 431 first, then the request id's 400, then the body's 413."""
    r = await client.post("/v1/authorize", content=b"x" * 5000,
                          headers={"x-filler": "y" * 140_000, "x-request-id": "has space"})
    assert r.status_code == 431
    r = await client.post("/v1/authorize", content=b"x" * 5000,
                          headers={"x-request-id": "has space"})
    assert r.status_code == 400 and "X-Request-ID" in r.json()["detail"]


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(
        components) -> None:
    """A Content-Length over the limit is refused on its word, whatever comes after it
    (here a small body that would otherwise be read and parsed)."""
    from pdp.server import create_app

    app = create_app(components, watch=False)
    body = json.dumps({"subject": {"token": "x"}, "action": "read",
                       "resource": {"type": "App::Dataset", "id": "sales-daily"}}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/authorize",
             "raw_path": b"/v1/authorize", "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8181),
             "headers": [(b"host", b"pdp"), (b"content-type", b"application/json"),
                         (b"content-length", b"5000")]}
    read: list[bool] = []
    sent: list[dict] = []

    async def receive() -> dict:
        read.append(True)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 413 and read == []


async def test_a_method_not_allowed_says_which_are(client) -> None:
    r = await client.request("TRACE", "/healthz")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    assert "GET" in r.headers["allow"]


_text = st.text(st.characters(codec=None, categories=("L", "N", "P", "Cs", "Cc")), max_size=8)
_values = st.recursive(st.none() | st.booleans() | st.integers() | _text,
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_text, inner, max_size=3), max_leaves=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(context=st.dictionaries(_text, _values, max_size=4), door=st.sampled_from(DOORS))
async def test_no_context_value_gets_a_5xx(client, mint, context, door) -> None:
    # json.dumps writes lone surrogates as escapes, as a hostile client would.
    path, raw = door(mint(ETL), context=json.dumps(context))
    r = await client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"
