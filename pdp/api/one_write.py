"""An answer leaves in one ``write``: its header block and its body in one TCP segment.

uvicorn's httptools protocol writes a response's status line and headers when the app
sends ``http.response.start`` and its body when the app sends ``http.response.body``:
two ``write`` calls, two segments. A client on the other end (a PEP, wrk) is woken by
the first, parses a header block with no body yet, waits again and is woken by the
second: at one connection a second wake-up of the client and a second system call on
the worker for every decision (bench/RESULTS.md, "Issue 16, round 10: one"). Go's
``net/http`` (Cerbos) buffers and sends one.

:class:`HeldHeader` stands in for the transport of one request's cycle and holds the
header block until the body's first write, then writes both at once. It holds only a
block that is certain to be followed at once: a response with a ``Content-Length``
(Starlette's ``Response`` sends its body right after its start), never a chunked one
(a stream may wait before its first chunk), nor a HEAD request's (no body is written),
nor anything written before the response started (``100 Continue``). The body's
write, or the transport's closing (an app that fails after its start), writes what is
held.
"""

from __future__ import annotations

import asyncio
from typing import Any


class HeldHeader:
    """The transport as one ``RequestResponseCycle`` of uvicorn sees it (see the module
    docstring); everything but ``write`` and ``close`` is the transport's own."""

    __slots__ = ("cycle", "held", "transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self.transport = transport
        self.cycle = cycle  # its response_started, chunked_encoding and scope are read
        self.held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self.held
        if held is not None:  # the body (or what follows the header block): both go now
            self.held = None
            self.transport.write(held + data)
            return
        cycle = self.cycle
        if (cycle.response_started and cycle.chunked_encoding is False
                and not cycle.response_complete and cycle.scope["method"] != "HEAD"
                and cycle.expected_content_length > 0):
            self.held = data  # the header block: its body is written next
            return
        self.transport.write(data)

    def flush(self) -> None:
        """Write what is held (nothing follows it after all)."""
        held = self.held
        if held is not None:
            self.held = None
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class OneWriteMixin:
    """For uvicorn's httptools protocol: each request's cycle writes through a
    :class:`HeldHeader` (a mixin: uvicorn's protocol class follows it in the MRO)."""

    cycle: Any  # uvicorn's RequestResponseCycle, or None before the first request
    transport: asyncio.Transport

    def on_headers_complete(self) -> None:
        super().on_headers_complete()  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # a new cycle
            cycle.transport = HeldHeader(self.transport, cycle)


__all__ = ["HeldHeader", "OneWriteMixin"]
