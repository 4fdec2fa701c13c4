"""A draining worker answers a request sent on a kept-alive connection, with
``Connection: close``, instead of resetting it (pdp.api.drain).

The attack is the keep-alive close race a rollout under traffic hit in the suite: a
client sends its next request on a connection the stopping worker is closing. Here
the request comes 0.2 s after the drain began, past the 0.1 s after which the worker
used to close every idle connection, so the test fails on that behaviour.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from pdp.api.drain import IDLE_GRACE_S, DrainingServer, drain, draining_protocol_class
from tests.server import free_port

REQUEST = b"GET / HTTP/1.1\r\nHost: pdp\r\n\r\n"


async def _app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


@dataclass
class Running:
    server: DrainingServer
    thread: threading.Thread
    port: int
    draining: threading.Event


@pytest.fixture
def running() -> Iterator[Running]:
    port = free_port()
    draining = threading.Event()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, lifespan="off",
                            log_level="warning", http=draining_protocol_class())
    server = DrainingServer(config, on_draining=draining.set)
    thread = threading.Thread(target=server.run, daemon=True)  # no signal handlers off main
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    yield Running(server, thread, port, draining)
    server.should_exit = True
    thread.join(timeout=30)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _exchange(sock: socket.socket) -> bytes:
    """Send one request; its whole response (head and the 2-byte body)."""
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_request_on_a_kept_alive_connection_during_the_drain_is_answered(
        running: Running) -> None:
    busy, idle = _connect(running.port), _connect(running.port)
    for sock in (busy, idle):
        first = _exchange(sock)
        assert first.startswith(b"HTTP/1.1 200") and b"connection: close" not in first.lower()
    running.server.should_exit = True
    assert running.draining.wait(10)
    time.sleep(0.2)  # the old drain had closed every idle connection by now
    answer = _exchange(busy)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b"connection: close" in answer.lower()  # go elsewhere for the next one
    assert _closed_by_peer(busy, within=5)
    # The connection nobody used is closed once the grace is over, and the worker stops.
    assert _closed_by_peer(idle, within=IDLE_GRACE_S + 10)
    running.thread.join(timeout=30)
    assert not running.thread.is_alive()
    with pytest.raises(OSError):  # it no longer listens
        _connect(running.port).sendall(REQUEST)


def test_the_drain_ends_as_soon_as_every_connection_has_gone() -> None:
    """No connection left (or each gone meanwhile): the worker does not sit out the grace."""
    async def scenario() -> None:
        connections: set[object] = {object()}
        asyncio.get_running_loop().call_later(0.05, connections.clear)  # the client leaves
        await asyncio.wait_for(drain(connections, idle_grace_s=600), timeout=60)
        await asyncio.wait_for(drain(set(), idle_grace_s=600), timeout=60)

    asyncio.run(scenario())
