"""The decision doors answer on the wire exactly as the app without their fast path does.

``POST /v1/authorize`` and AuthZEN's ``POST /access/v1/evaluation`` are answered by
:class:`pdp.api.fastpath.FastPath` from a :class:`pdp.api.door.DoorRequest`, before
FastAPI's routing; without it (``POST_PATHS`` emptied) the FastAPI routes answer. The
property test here drives uvicorn's own protocol (``pdp serve``'s,
:func:`pdp.api.drain.draining_protocol_class`) over a transport that records every byte,
with generated connections: one to three requests each, good and bad bodies (strict JSON
violations, lone surrogates, deep nesting, bytes that are not UTF-8, too large), every
content type, PEP credentials good, forged, of another scheme or empty, ``X-Request-ID``
variants (valid, empty, with a space, too long, latin-1, twice), headers over the limit,
chunked bodies, ``Expect: 100-continue``, HEAD/GET/OPTIONS on the doors, pipelining, a
client that leaves mid-body. Each connection is played both ways, and the bytes written
(every status line, header and body), the decision records and the request-log lines must
be the same, up to what differs between any two decisions (ids, clocks, the ``date``
header, the ``ms`` of a log line).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.api.authorize import AUTHORIZE_PATH
from pdp.api.authzen import EVALUATION_PATH
from pdp.api.fastpath import POST_PATHS
from pdp.api.requestlog import LOGGER_NAME, TurnBatchedHandler
from pdp.components import build_components
from pdp.server import create_app
from tests.api.test_authorize_fast_path import _request
from tests.api.test_one_write import RecordingTransport, _connect
from tests.identity.workloads import TrustDomain, settings_for

ENVOY = "spiffe://example.org/peps/envoy"
MAX_BODY = 4096

_VOLATILE_BODY = ("decision_id", "timestamp", "valid_until", "diagnosis")
_VOLATILE_RECORD = {"decision_id", "timestamp", "valid_until", "context", "diagnosis", "seq",
                    "hash", "prev_hash", "latency_us", "live", "credential_context",
                    "credential"}


@pytest.fixture(scope="module")
def td() -> TrustDomain:
    return TrustDomain("example.org")


@pytest.fixture(scope="module")
def tokens(td: TrustDomain) -> dict[str, str]:
    forged = TrustDomain("example.org")  # the same name, another (untrusted) key
    return {"envoy": td.jwt_svid("/peps/envoy", ttl_s=3600),
            "not-listed": td.jwt_svid("/services/etl", ttl_s=3600),
            "forged": forged.jwt_svid("/peps/envoy", ttl_s=3600)}


@pytest.fixture
def served(tmp_path: Path, td: TrustDomain) -> Iterator[tuple[Any, Any]]:
    """The served app (request log on) around components with an enforced PEP allowlist
    (only Envoy), so that refusals are real refusals."""
    parts = build_components(settings_for(tmp_path, td, pep_allowlist=[ENVOY],
                                          max_body_bytes=MAX_BODY))
    yield create_app(parts, watch=False), parts
    parts.close()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The request log's lines, written here instead of to stderr."""
    handlers = [h for h in logging.getLogger(LOGGER_NAME).handlers
                if isinstance(h, TurnBatchedHandler)]
    out = io.StringIO()
    previous = [h.setStream(out) for h in handlers]
    yield out
    for handler, stream in zip(handlers, previous):
        if stream is not None:
            handler.setStream(stream)


@contextmanager
def routes_only() -> Iterator[None]:
    """Both doors pass the fast path by, to their FastAPI routes (the app without it)."""
    saved = dict(POST_PATHS)
    POST_PATHS.clear()
    try:
        yield
    finally:
        POST_PATHS.update(saved)


# --- generated requests ------------------------------------------------------------------


def _encoded(value: dict[str, Any], form: str) -> bytes:
    raw = json.dumps(value).encode()
    return {"json": raw, "truncated": raw[: len(raw) // 2], "empty": b"", "array": b"[]",
            "surrogate": raw[:-1] + b',"x":"\\udfff"}',
            "deep": raw[:-1] + b',"x":' + b"[" * 300 + b"]" * 300 + b"}",
            "latin-1": raw[:-1] + b',"x":"\xe9t\xe9"}', "nan": raw[:-1] + b',"x":NaN}',
            "too-large": raw[:-1] + b',"x":"' + b"a" * MAX_BODY + b'"}'}[form]


_PEPS = {"envoy": lambda t: [(b"authorization", b"Bearer " + t["envoy"].encode())],
         "lowercase": lambda t: [(b"authorization", b"bearer  " + t["envoy"].encode() + b" ")],
         "not-listed": lambda t: [(b"authorization", b"Bearer " + t["not-listed"].encode())],
         "forged": lambda t: [(b"authorization", b"Bearer " + t["forged"].encode())],
         "twice": lambda t: [(b"authorization", b"Bearer " + t["envoy"].encode()),
                             (b"authorization", b"Bearer x")],
         "none": lambda t: [], "basic": lambda t: [(b"authorization", b"Basic ZW52b3k6c2VjcmV0")],
         "empty": lambda t: [(b"authorization", b"Bearer ")],
         "scheme-only": lambda t: [(b"authorization", b"Bearer")]}
_CONTENT_TYPES: dict[str, list[bytes]] = {
    "json": [b"application/json"], "charset": [b"application/json; charset=utf-8"],
    "upper": [b"APPLICATION/JSON"], "problem": [b"application/problem+json"],
    "text": [b"text/plain"], "none": [], "empty": [b""],
    "twice": [b"text/plain", b"application/json"]}
_REQUEST_IDS: dict[str, list[bytes]] = {
    "none": [], "plain": [b"req-7"], "empty": [b""], "space": [b"a b"], "long": [b"r" * 129],
    "latin-1": [b"\xe9t\xe9"], "twice": [b"first", b"second"], "max": [b"r" * 128]}

def _mostly(good: Any, others: list[Any], weight: int = 12) -> st.SearchStrategy[Any]:
    """``good`` about ``weight`` times in ``weight + len(others)``, else one of ``others``:
    most requests then get through to a decision, each with a few things wrong."""
    return st.sampled_from([good] * weight + others)


_REQUESTS = st.fixed_dictionaries({
    "method": _mostly("POST", ["HEAD", "GET", "OPTIONS"], 24),
    "path": st.sampled_from([AUTHORIZE_PATH] * 12 + [EVALUATION_PATH] * 12
                            + [AUTHORIZE_PATH + "?q=1", AUTHORIZE_PATH + "/"]),
    "pep": _mostly("envoy", sorted(set(_PEPS) - {"envoy"}), 40),
    "content_type": _mostly("json", sorted(set(_CONTENT_TYPES) - {"json"}), 40),
    "request_id": _mostly("plain", sorted(set(_REQUEST_IDS) - {"plain"}), 30),
    "subject": _mostly("etl", ["garbage", "none"], 20),
    "context": _mostly(None, [{"purpose": "report"}, {"live": {}}], 10),
    "form": _mostly("json", ["truncated", "empty", "array", "surrogate", "deep", "latin-1",
                             "nan", "too-large"], 40),
    "chunked": _mostly(False, [True], 4),
    "expect": _mostly(False, [True], 6),
    "huge_header": _mostly(False, [True], 30),
})


def _raw(request: dict[str, Any], td: TrustDomain, tokens: dict[str, str],
         close: bool) -> bytes:
    door = EVALUATION_PATH if request["path"].startswith(EVALUATION_PATH) else AUTHORIZE_PATH
    value = _request(td, door, request["subject"], "read", "sales-daily", request["context"],
                     True)  # explained: the reasons are compared too
    body = _encoded(value, request["form"])
    headers: list[tuple[bytes, bytes]] = [(b"host", b"pdp")]
    headers += [(b"content-type", v) for v in _CONTENT_TYPES[request["content_type"]]]
    headers += [(b"x-request-id", v) for v in _REQUEST_IDS[request["request_id"]]]
    headers += _PEPS[request["pep"]](tokens)
    if request["expect"]:
        headers.append((b"expect", b"100-continue"))
    if request["huge_header"]:
        headers.append((b"x-pad", b"p" * 140_000))
    if close:
        headers.append((b"connection", b"close"))
    if request["chunked"]:
        headers.append((b"transfer-encoding", b"chunked"))
        half = len(body) // 2
        payload = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                           for part in (body[:half], body[half:]) if part) + b"0\r\n\r\n"
    else:
        headers.append((b"content-length", str(len(body)).encode()))
        payload = body
    head = b"%s %s HTTP/1.1\r\n" % (request["method"].encode(), request["path"].encode())
    return head + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n" + payload


# --- playing a connection ----------------------------------------------------------------


async def _idle(protocol: Any, transport: RecordingTransport) -> None:
    """Until every request fed so far is answered, or the connection is gone."""
    for _ in range(2000):
        await asyncio.sleep(0.002)
        cycle = protocol.cycle
        if not protocol.tasks and (
                cycle is None or transport.closed or cycle.disconnected
                or (cycle.response_complete and not protocol.pipeline)):
            for _ in range(3):  # the request log's end-of-turn flush
                await asyncio.sleep(0)
            return
    raise AssertionError(f"not answered; written so far: {transport.writes}")


async def _play(app: Any, raws: list[bytes], pipelined: bool, cut: bool) -> bytes:
    """Feed ``raws`` on one connection (one by one, each once the previous is answered,
    or all at once); with ``cut`` the last is fed only to the middle of its body and the
    client leaves at once. Everything written back."""
    protocol, transport = _connect(app)
    if cut:
        head, _, body = raws[-1].partition(b"\r\n\r\n")
        raws = [*raws[:-1], head + b"\r\n\r\n" + body[: len(body) // 2]]
    if pipelined:
        protocol.data_received(b"".join(raws))
    else:
        for i, raw in enumerate(raws):
            if transport.closed:
                break
            protocol.data_received(raw)
            if not (cut and i == len(raws) - 1):
                await _idle(protocol, transport)
    if cut:
        protocol.connection_lost(None)
    await _idle(protocol, transport)
    if not transport.closed:
        protocol.connection_lost(None)
    return b"".join(transport.writes)


def _responses(wire: bytes, methods: list[str]) -> list[tuple[bytes, list[bytes], Any]]:
    """Each response (``methods``: of the requests, in order): its status line, its
    header lines (``date`` left out), its body (JSON without what differs between two
    decisions). A body's length must be what its ``content-length`` says."""
    out = []
    methods = list(methods)
    while wire:
        head, sep, rest = wire.partition(b"\r\n\r\n")
        assert sep, wire
        status, *lines = head.split(b"\r\n")
        length = 0
        if not status.startswith(b"HTTP/1.1 100 ") and methods.pop(0) != "HEAD":
            for line in lines:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
        body, wire = rest[:length], rest[length:]
        assert len(body) == length, (length, body)
        out.append((status, [x for x in lines if not x.lower().startswith(b"date:")],
                    _comparable(body)))
    return out


def _comparable(body: bytes) -> Any:
    try:
        content = json.loads(body)
    except ValueError:
        return body
    if isinstance(content, dict):
        for key in _VOLATILE_BODY:
            content.pop(key, None)
        context = content.get("context")
        if isinstance(context, dict):
            if "decision" in content and isinstance(content["decision"], str):
                content.pop("context")  # /v1/authorize's: the live snapshot, its `now`
            else:
                context.pop("id", None)  # AuthZEN's reasons
                context.pop("decision_id", None)
    return content


def _records(components: Any, since: int) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in _VOLATILE_RECORD}
            for r in list(components.log.iter_all())[since:]]


def _lines(out: io.StringIO) -> list[str]:
    for handler in logging.getLogger(LOGGER_NAME).handlers:
        handler.flush()
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return [re.sub(r"ms=[0-9.]+", "ms=_", line) for line in text.splitlines()]


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(requests=st.lists(_REQUESTS, min_size=1, max_size=3), pipelined=st.booleans(),
       cut=_mostly(False, [True], 8), close=_mostly(False, [True], 3))
def test_the_fast_path_and_the_app_without_it_write_the_same_bytes(
        served: tuple[Any, Any], td: TrustDomain, tokens: dict[str, str],
        log_lines: io.StringIO,
        requests: list[dict[str, Any]], pipelined: bool, cut: bool, close: bool) -> None:
    app, components = served
    raws = [_raw(r, td, tokens, close and i == len(requests) - 1)
            for i, r in enumerate(requests)]
    seen = []
    for lean in (True, False):
        before = sum(1 for _ in components.log.iter_all())
        _lines(log_lines)
        if lean:
            wire = asyncio.run(_play(app, raws, pipelined, cut))
        else:
            with routes_only():
                wire = asyncio.run(_play(app, raws, pipelined, cut))
        methods = [r["method"] for r in requests]
        seen.append((_responses(wire, methods), _records(components, before), _lines(log_lines)))
    assert seen[0][0] == seen[1][0]  # every response: status, headers, body
    assert seen[0][1] == seen[1][1]  # the decision records
    assert seen[0][2] == seen[1][2]  # the request log's lines
