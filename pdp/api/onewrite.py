"""A response's status line and headers leave in the same write as its first body bytes.

uvicorn's httptools protocol writes an answer in two ``transport.write`` calls: the
status line and headers when the app sends ``http.response.start``, the body when it
sends ``http.response.body``. uvloop sends each at once, so every decision answer
cost two ``send`` system calls and two TCP segments (on loopback, the receiving
side's processing runs in the sender's system call too), and woke the client twice.
Measured at 64 connections (bench/RESULTS.md, round 10 "cpu"), about 1.5% of the
server's CPU per decision.

:class:`OneWriteCycle` keeps uvicorn's own ``send`` (every check, the header
encoding, ``Content-Length`` accounting, keep-alive) and only changes where its
writes go: for a response with a ``Content-Length`` above zero, which must be
followed by that many body bytes, the head is held and written together with the
first body bytes, in one write. Everything else is written as before: a chunked
(streaming) response's head at once (its first chunk may come much later), a
``HEAD`` answer's head at once (it has no body write), a response without a body.
The bytes on the wire are the same, in the same order; a head is never written
after bytes that followed it. If the app fails between its head and its body,
uvicorn closes the connection, and the held head is written just before that: the
client reads what it read before.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class _Held:
    """The transport, as uvicorn's ``send`` sees it while writing a response's head: what
    is written is kept (in order) instead of sent."""

    __slots__ = ("data", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())


class _Prefixed:
    """The transport, as the cycle sees it once a head is held: the head goes out in
    front of the next write, or alone before the transport is closed."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: Any, head: bytes) -> None:
        self.transport = transport
        self.head: bytes | None = head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, None
        self.transport.write(data if head is None else head + data)

    def close(self) -> None:
        head, self.head = self.head, None
        if head is not None and not self.transport.is_closing():
            self.transport.write(head)  # nothing followed it: the head alone, as before
        self.transport.close()

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle whose answer's head waits for its first body
    bytes when a ``Content-Length`` above zero says body bytes must follow."""

    async def send(self, message: Any) -> None:
        if (message["type"] != "http.response.start" or self.response_started
                or self.scope["method"] == "HEAD"):
            await super().send(message)
            return
        transport = self.transport
        self.transport = held = _Held(transport)  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
        if self.chunked_encoding is False and self.expected_content_length > 0:
            self.transport = _Prefixed(transport, held.data)  # type: ignore[assignment]
        elif held.data:
            transport.write(held.data)


class OneWriteMixin:
    """For uvicorn's httptools protocol: each request's cycle is a :class:`OneWriteCycle`.

    The protocol makes the cycle in ``on_headers_complete``; its task has not run yet
    when this returns (it is only scheduled, or queued behind a pipelined request), so
    nothing of its answer is written before the cycle is changed."""

    cycle: Any  # uvicorn's RequestResponseCycle, or None between requests

    def on_headers_complete(self) -> None:
        super().on_headers_complete()  # type: ignore[misc]
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = OneWriteCycle


__all__ = ["OneWriteCycle", "OneWriteMixin"]
