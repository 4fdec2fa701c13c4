"""``pdp.api.deps.request_id`` reads ``X-Request-ID`` by scanning the raw headers (no
``KeyError`` raised and caught when it is absent): held equal to Starlette's
``request.headers.get("x-request-id")`` on generated header lists, absent, repeated,
empty and non-ASCII values included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from pdp.api.deps import request_id

names = st.sampled_from([b"x-request-id", b"x-request-ids", b"x-request-i", b"content-type",
                         b"authorization", b"x-correlation-id"])
values = st.binary(max_size=12).filter(lambda v: b"\r" not in v and b"\n" not in v)


@settings(max_examples=200, deadline=None)
@given(headers=st.lists(st.tuples(names, values), max_size=6))
def test_the_scan_reads_what_starlettes_headers_read(headers) -> None:
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": headers})
    assert request_id(request) == request.headers.get("x-request-id")
