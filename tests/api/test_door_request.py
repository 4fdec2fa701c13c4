"""A DoorRequest reads a request exactly as Starlette's ``Request``, FastAPI's ``HTTPBearer``
and :func:`pdp.api.deps.request_id` read it, and ``DecisionJSON`` is ``FastJSONResponse``.

Both ways to a decision door (the fast path and the FastAPI routes) read the request
through :class:`pdp.api.door.DoorRequest`, so a test comparing those two ways cannot see
a difference in it; these tests pin it to what the doors read before it existed:
``request.headers.get(...)``, ``await pep_bearer(request)``, ``await request.body()``
(its chunks, a client gone, a stream read twice), and the 200 answer's bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from pdp.api.bearer import pep_bearer
from pdp.api.deps import request_id
from pdp.api.door import DoorRequest
from pdp.api.fastjson import DecisionJSON, FastJSONResponse

_NAMES = st.sampled_from([b"content-type", b"authorization", b"x-request-id", b"host",
                          b"Content-Type", b"x-other", b"authorization2"])
_VALUES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"Bearer abc", b"bearer  abc ", b"BEARER x", b"Bearer", b"Bearer ",
                     b"Basic abc", b" Bearer abc", b"Bearer \xa0abc\xa0", b"Bearer a b",
                     b"application/json", b"", b"\xe9t\xe9", b"Bearer\tabc"]),
    st.text(max_size=20).map(lambda t: t.encode("utf-8")))
_HEADERS = st.lists(st.tuples(_NAMES, _VALUES), max_size=8)


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v1/authorize", "headers": headers,
            "query_string": b"", "root_path": "", "scheme": "http",
            "server": ("127.0.0.1", 8181), "client": ("127.0.0.1", 5000)}


@settings(max_examples=300, deadline=None)
@given(headers=_HEADERS)
def test_headers_and_bearer_read_as_starlette_and_http_bearer_read_them(
        headers: list[tuple[bytes, bytes]]) -> None:
    scope = _scope(headers)
    door = DoorRequest(scope, _no_body)
    plain = Request(scope)
    assert door.content_type == plain.headers.get("content-type")
    assert door.authorization == plain.headers.get("authorization")
    assert door.request_id == request_id(plain) == plain.headers.get("x-request-id")
    expected = asyncio.run(pep_bearer(plain))
    got = door.bearer()
    assert (got is None) == (expected is None)
    if got is not None and expected is not None:
        assert (got.scheme, got.credentials) == (expected.scheme, expected.credentials)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


_MESSAGES = st.lists(st.one_of(
    st.builds(lambda body, more: {"type": "http.request", "body": body, "more_body": more},
              st.binary(max_size=12), st.booleans()),
    st.builds(lambda body: {"type": "http.request", "body": body}, st.binary(max_size=12)),
    st.just({"type": "http.disconnect"})), min_size=1, max_size=6)


async def _outcome(request: Request, twice: bool, streamed: bool) -> list[Any]:
    out: list[Any] = []
    if streamed:  # something read the stream itself first (the body is not kept then)
        try:
            out.append([chunk async for chunk in request.stream()])
        except Exception as e:  # noqa: BLE001 - the exception itself is compared
            out.append((type(e), str(e)))
    for _ in range(2 if twice else 1):
        try:
            out.append(await request.body())
        except Exception as e:  # noqa: BLE001 - the exception itself is compared
            out.append((type(e), str(e)))
    out.append(request._is_disconnected)
    return out


@settings(max_examples=300, deadline=None)
@given(messages=_MESSAGES, twice=st.booleans(), streamed=st.booleans())
def test_the_body_is_read_as_request_body_reads_it(messages: list[dict[str, Any]],
                                                   twice: bool, streamed: bool) -> None:
    def receiver() -> Any:
        queue = list(messages)

        async def receive() -> dict[str, Any]:
            return queue.pop(0) if queue else {"type": "http.disconnect"}
        return receive

    scope = _scope([])
    door = asyncio.run(_outcome(DoorRequest(scope, receiver()), twice, streamed))
    plain = asyncio.run(_outcome(Request(scope, receiver()), twice, streamed))
    assert door == plain


@pytest.mark.parametrize("rid", [None, "", "req-7", "\xe9t\xe9", "r" * 128])
@pytest.mark.parametrize("content", [{"decision": "allow", "reasons": [], "n": 1.5},
                                     {"decision": True}, {"x": "\u00e9\u2603"}])
def test_decision_json_is_fast_json_response(rid: str | None, content: dict[str, Any]) -> None:
    mine = DecisionJSON(content, rid)
    theirs = FastJSONResponse(content, headers={"x-request-id": rid} if rid else {})
    assert (mine.status_code, mine.raw_headers, mine.body, mine.background) == \
        (theirs.status_code, theirs.raw_headers, theirs.body, theirs.background)
