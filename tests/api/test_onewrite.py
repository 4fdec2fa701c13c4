"""An answer's head and body leave in one write, and the bytes on the wire do not change
(pdp.api.onewrite).

The attack: hypothesis-generated answers (statuses, headers, bodies in one or more
parts, chunked, none, a ``Content-Length`` that lies, an app failing between its head
and its body, ``HEAD``, ``Connection: close``, a pipelined second request) are asked of
two servers, uvicorn's own httptools protocol and ours, and every byte each sends
back until it closes the connection must be the same. Then: a ``Content-Length``
answer is one transport write with ours, two with uvicorn's.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pdp.api.drain import DrainingMixin, draining_protocol_class
from tests.server import free_port


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    mode: str  # "length": Content-Length given; "chunked"/"none": not given
    parts: tuple[bytes, ...]
    length_delta: int  # added to the true length in Content-Length (a lie unless 0)
    fail_after_head: bool


ANSWERS: dict[str, Answer] = {}
_ids = itertools.count()


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    answer = ANSWERS[scope["path"]]
    body = b"".join(answer.parts)
    headers = list(answer.headers)
    if answer.mode == "length":
        headers.append((b"content-length", str(len(body) + answer.length_delta).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    if answer.fail_after_head:
        raise RuntimeError("the app fails between its head and its body")
    parts = answer.parts or (b"",)
    for i, part in enumerate(parts):
        await send({"type": "http.response.body", "body": part,
                    "more_body": i < len(parts) - 1})


class _Counting:
    """A transport that counts the writes made through it."""

    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


WRITES: dict[str, list[bytes]] = {"ours": [], "uvicorn": []}


def _counting(base: type, name: str) -> type:
    def connection_made(self: Any, transport: Any) -> None:
        base.connection_made(self, _Counting(transport, WRITES[name]))

    return type(f"Counting{base.__name__}", (base,), {"connection_made": connection_made})


@dataclass
class Servers:
    ports: dict[str, int]


def _serve(protocol: type) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, lifespan="off",
                            log_level="critical", http=protocol, date_header=False,
                            server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    return server, thread, port


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    uvicorn_own = type("PlainHttpProtocol", (DrainingMixin, HttpToolsProtocol), {})
    started = {"ours": _serve(_counting(draining_protocol_class(), "ours")),
               "uvicorn": _serve(_counting(uvicorn_own, "uvicorn"))}
    yield Servers({name: port for name, (_, _, port) in started.items()})
    for server, thread, _ in started.values():
        server.should_exit = True
        thread.join(timeout=30)


def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request``; everything the server sends until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _request(method: str, path: str, *, close: bool) -> bytes:
    body = b'{"a":1}' if method == "POST" else b""
    head = [f"{method} {path} HTTP/1.1", "Host: pdp"]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_header_names = st.from_regex(rb"\Ax-[a-z][a-z0-9-]{0,12}\Z")
_header_values = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if 0x20 <= c < 0x7f).strip())
answers = st.builds(
    Answer,
    status=st.sampled_from([200, 201, 204, 304, 400, 403, 404, 413, 500]),
    headers=st.lists(st.tuples(_header_names, _header_values), max_size=3).map(tuple),
    mode=st.sampled_from(["length", "length", "length", "chunked", "none"]),
    parts=st.lists(st.binary(max_size=300), max_size=3).map(tuple),
    length_delta=st.sampled_from([0, 0, 0, 0, -1, 1]),
    fail_after_head=st.sampled_from([False, False, False, True]),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=answers, second=answers,
       methods=st.tuples(st.sampled_from(["GET", "POST", "HEAD"]),
                         st.sampled_from(["GET", "POST", "HEAD"])),
       pipelined=st.booleans())
def test_every_byte_on_the_wire_is_uvicorns(servers: Servers, first: Answer, second: Answer,
                                            methods: tuple[str, str], pipelined: bool) -> None:
    paths = []
    for answer in (first, second):
        path = f"/{next(_ids)}"
        ANSWERS[path] = answer
        paths.append(path)
    if pipelined:  # a kept-alive request, then a second one on the same connection
        request = (_request(methods[0], paths[0], close=False)
                   + _request(methods[1], paths[1], close=True))
    else:
        request = _request(methods[0], paths[0], close=True)
    ours = _exchange(servers.ports["ours"], request)
    theirs = _exchange(servers.ports["uvicorn"], request)
    assert ours == theirs


def test_an_answer_with_a_length_is_one_write(servers: Servers) -> None:
    ANSWERS["/one"] = Answer(200, ((b"content-type", b"application/json"),), "length",
                             (b'{"decision":"allow"}',), 0, False)
    for name in ("ours", "uvicorn"):
        WRITES[name].clear()
        data = _exchange(servers.ports[name], _request("POST", "/one", close=True))
        assert data.endswith(b'{"decision":"allow"}')
    assert WRITES["ours"] == [b"".join(WRITES["uvicorn"])]
    assert len(WRITES["uvicorn"]) == 2


def test_a_streamed_answer_sends_its_head_at_once(servers: Servers) -> None:
    """Chunked (no length): the head must not wait for a first chunk that may come late."""
    ANSWERS["/stream"] = Answer(200, (), "chunked", (b"a", b"b"), 0, False)
    WRITES["ours"].clear()
    _exchange(servers.ports["ours"], _request("GET", "/stream", close=True))
    assert WRITES["ours"][0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert WRITES["ours"][0].endswith(b"\r\n\r\n")
