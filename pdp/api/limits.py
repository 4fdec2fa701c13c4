"""Request size limits, enforced before anything parses the request (:class:`RequestLimits`).

- headers larger than :data:`MAX_HEADER_BYTES` in all are **431** (RFC 6585 §5), and
  an ``X-Request-ID`` that is not 1-128 visible ASCII characters is **400**;
- a body larger than ``max_body_bytes`` (declared or streamed) is **413**.

The request id is echoed and stored with every decision, so an unbounded one (a
megabyte was once stored) would grow the log at a caller's will; uvicorn's httptools
parser has no header size limit of its own.
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_HEADER_BYTES = 131072
"""All request headers together (names and values): room for a forwarded
client-certificate chain (``pdp.api.forwarded`` takes up to 64 KiB)."""

MAX_REQUEST_ID = 128
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_REQUEST_ID)


class BodyTooLarge(HTTPException):
    """Raised while the body streams in: an ``HTTPException`` so that FastAPI's body
    parsing passes it on (as 413) instead of calling it "an error parsing the body".

    Raised past :class:`RequestLimits` it is answered there (:meth:`answer`); a
    decision door's route answers it the same way itself (``pdp.api.door.answer_routed``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail="Request body too large")
        self.limit = limit

    def answer(self) -> Response:
        """The 413 :class:`RequestLimits` sends for a body over ``limit`` bytes."""
        return problem_answer(413, "Request body too large",
                              f"the body exceeds {self.limit} bytes")


class RequestLimits:
    """ASGI middleware: 431 for oversized headers, 400 for a malformed ``X-Request-ID``,
    413 for a body over ``max_body_bytes`` (declared or streamed), in that order.

    One layer and one pass over the headers for all three (they were two middleware
    walking the headers three times, on every request).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int,
                 max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = 0
        request_id_ok = True
        declared = None  # the last Content-Length, as a dict of the headers would keep
        for name, value in scope.get("headers", ()):
            size += len(name) + len(value)
            if name == b"content-length":
                declared = value
            elif name == b"x-request-id" and not _REQUEST_ID.fullmatch(value):
                request_id_ok = False
        if size > self.max_header_bytes:
            await send_problem(send, 431, "Request header fields too large",
                               f"the headers exceed {self.max_header_bytes} bytes")
            return
        if not request_id_ok:
            await send_problem(send, 400, "Invalid X-Request-ID",
                               f"X-Request-ID must be 1-{MAX_REQUEST_ID} visible "
                               "ASCII characters (no spaces)")
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return
        seen = 0
        limit = self.max_body_bytes

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await _send(send, BodyTooLarge(self.max_body_bytes).answer())


def problem_answer(status: int, title: str, detail: str) -> Response:
    """An RFC 9457 problem answer as the middleware sends it (below FastAPI's handlers:
    its own header order and JSON spacing)."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail}).encode()
    response = Response(body, status_code=status)
    response.raw_headers = [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]
    return response


async def send_problem(send: Send, status: int, title: str, detail: str) -> None:
    """:func:`problem_answer`, sent from middleware."""
    await _send(send, problem_answer(status, title, detail))


async def _send(send: Send, response: Response) -> None:
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
