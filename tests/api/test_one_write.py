"""Each answer leaves in one write, and nothing is held that must leave now (pdp.api.one_write).

uvicorn's protocol of ``pdp serve`` (:func:`pdp.api.drain.draining_protocol_class`) is
driven here over a transport that records every ``write``: a response with a body
must reach it in one call; a stream's header block must reach it before its first
chunk (the app waits before sending one), a ``100 Continue`` before the app has read
the body, a HEAD answer at all, and a header block whose app then fails must not be
lost when the connection closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from pdp.api.drain import draining_protocol_class
from pdp.api.one_write import HeldHeader

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
BODY = b'{"decision":"allow"}'


class RecordingTransport(asyncio.Transport):
    """What the protocol wrote, one entry per ``write``; ``closed`` once closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8181)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _connect(app: App) -> tuple[Any, RecordingTransport]:
    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    protocol = draining_protocol_class()(config=config, server_state=ServerState(),
                                         app_state={})  # type: ignore[call-arg]
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _settle(transport: RecordingTransport, until: Callable[[], bool]) -> None:
    for _ in range(200):
        if until():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not reached; written so far: {transport.writes}")


async def _answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


POST = (b"POST /v1/authorize HTTP/1.1\r\nHost: pdp\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}")


def test_an_answer_with_a_body_is_one_write() -> None:
    async def main() -> None:
        protocol, transport = _connect(_answer)
        for _ in range(3):  # and again on the kept-alive connection
            transport.writes.clear()
            protocol.data_received(POST)
            await _settle(transport, lambda: bool(transport.writes))
            await asyncio.sleep(0.01)  # nothing more comes
            assert len(transport.writes) == 1, transport.writes
            head, _, body = transport.writes[0].partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK") and body == BODY
        assert not transport.closed

    asyncio.run(main())


def test_a_stream_sends_its_header_before_its_first_chunk() -> None:
    release = asyncio.Event()

    async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson")]})  # chunked
        await release.wait()
        await send({"type": "http.response.body", "body": b"{}\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def main() -> None:
        protocol, transport = _connect(stream)
        protocol.data_received(b"GET /export HTTP/1.1\r\nHost: pdp\r\n\r\n")
        await _settle(transport, lambda: bool(transport.writes))
        assert transport.writes[0].startswith(b"HTTP/1.1 200 OK")
        assert b"transfer-encoding: chunked" in transport.writes[0]
        release.set()
        await _settle(transport, lambda: transport.writes[-1].endswith(b"0\r\n\r\n"))

    asyncio.run(main())


def test_a_head_answer_is_written() -> None:
    async def main() -> None:
        protocol, transport = _connect(_answer)
        protocol.data_received(b"HEAD /v1/authorize HTTP/1.1\r\nHost: pdp\r\n\r\n")
        await _settle(transport, lambda: bool(transport.writes))
        assert transport.writes[0].startswith(b"HTTP/1.1 200 OK")
        assert transport.writes[0].endswith(b"\r\n\r\n")  # the head only

    asyncio.run(main())


def test_100_continue_is_sent_before_the_body_is_read() -> None:
    async def main() -> None:
        protocol, transport = _connect(_answer)
        protocol.data_received(b"POST /v1/authorize HTTP/1.1\r\nHost: pdp\r\n"
                               b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        await _settle(transport, lambda: bool(transport.writes))  # the app waits in receive()
        assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        protocol.data_received(b"{}")
        await _settle(transport, lambda: len(transport.writes) == 2)
        assert transport.writes[1].startswith(b"HTTP/1.1 200 OK")
        assert transport.writes[1].endswith(BODY)

    asyncio.run(main())


def test_a_header_block_is_not_lost_when_the_app_fails_after_it() -> None:
    async def fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        raise RuntimeError("the body could not be made")

    async def main() -> None:
        protocol, transport = _connect(fails)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: pdp\r\n\r\n")
        await _settle(transport, lambda: transport.closed)
        assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200")

    asyncio.run(main())


def test_connection_close_writes_then_closes() -> None:
    async def main() -> None:
        protocol, transport = _connect(_answer)
        protocol.data_received(POST.replace(b"Host: pdp\r\n", b"Host: pdp\r\nConnection: close\r\n"))
        await _settle(transport, lambda: transport.closed)
        assert len(transport.writes) == 1 and transport.writes[0].endswith(BODY)

    asyncio.run(main())


@pytest.mark.parametrize("first", [b"", b"x"])
def test_held_header_passes_other_writes_through(first: bytes) -> None:
    """Outside a started response with a length (before it, or for a chunked one) a
    write goes straight to the transport."""

    class Cycle:
        response_started = False
        chunked_encoding: bool | None = None
        response_complete = False
        expected_content_length = 0
        scope = {"method": "GET"}

    transport = RecordingTransport()
    held = HeldHeader(transport, Cycle())
    held.write(first + b"before")
    assert transport.writes == [first + b"before"]
    assert held.is_closing() is False  # the transport's own
