"""A decision request as the decision doors read it: the headers scanned once, the body on demand.

``POST /v1/authorize`` and AuthZEN's ``POST /access/v1/evaluation`` read three headers
(``content-type``, ``authorization``, ``x-request-id``) and the body, and answer. A
Starlette ``Request`` reads each header through a ``Headers`` mapping (a lowercased
key, a scan, a decode per read), the body through an async generator, and FastAPI's
``HTTPBearer`` reads ``authorization`` once more: small steps, a few microseconds in
all, on every decision. :class:`DoorRequest` is a ``Request`` (everything else reads
as before: the method, the URL, the TLS extension, the state) that reads those three
headers in one pass over the scope's list as ``Headers.get`` would (the first of each
name, latin-1), and its body as ``Request.body`` does.

Both ways to a decision door build one (:mod:`pdp.api.fastpath` from the ASGI scope,
the FastAPI route from its own request's scope and ``receive``) and hand it to the
door's one function, so the two cannot read a request differently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from pdp.api.bearer import Bearer
from pdp.api.limits import BodyTooLarge
from pdp.components import Components


class DoorRequest(Request):
    """A ``Request`` whose decision-door headers are read once (see the module docstring)."""

    content_type: str | None
    """The first ``content-type`` header, as ``request.headers.get("content-type")``."""
    authorization: str | None
    """The first ``authorization`` header."""
    request_id: str | None
    """The first ``x-request-id`` header (:func:`pdp.api.deps.request_id`)."""
    _body: bytes

    def __init__(self, scope: Scope, receive: Receive) -> None:
        super().__init__(scope, receive)
        content_type = authorization = request_id = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                if content_type is None:
                    content_type = value.decode("latin-1")
            elif name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"x-request-id" and request_id is None:
                request_id = value.decode("latin-1")
        self.content_type = content_type
        self.authorization = authorization
        self.request_id = request_id

    def bearer(self) -> Bearer:
        """The ``Authorization: Bearer`` credential, as ``HTTPBearer(auto_error=False)``
        reads it (:data:`pdp.api.bearer.pep_bearer`): None without one, or for another
        scheme, or with no token."""
        authorization = self.authorization
        scheme, credentials = get_authorization_scheme_param(authorization)
        if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
            return None
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)

    async def body(self) -> bytes:
        """The whole body, read as ``Request.body`` reads it: every ``http.request``
        message until one says no more follows; ``ClientDisconnect`` if the client
        left; ``RuntimeError`` if the stream was consumed without being kept."""
        try:
            return self._body
        except AttributeError:
            pass
        if self._stream_consumed:
            raise RuntimeError("Stream consumed")
        chunks: list[bytes] = []
        while not self._stream_consumed:
            message = await self._receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if not message.get("more_body", False):
                    self._stream_consumed = True
                if chunk:
                    chunks.append(chunk)
            elif message["type"] == "http.disconnect":
                self._is_disconnected = True
                raise ClientDisconnect()
        self._body = b"".join(chunks)
        return self._body


Answer = Callable[["DoorRequest", Components], Awaitable[Response]]
"""A decision door's one function: the request, the app's components -> the answer."""


async def answer_routed(answer: Answer, request: Request, components: Components) -> Response:
    """``answer`` for a decision door's FastAPI route (``request`` is the route's): on a
    :class:`DoorRequest` of its scope and ``receive``, as the fast path calls it. A body
    over the limit streamed in is answered as :class:`pdp.api.limits.RequestLimits`
    answers it around the fast path (FastAPI's own handler would answer a shorter 413)."""
    try:
        return await answer(DoorRequest(request.scope, request.receive), components)
    except BodyTooLarge as e:
        return e.answer()


__all__ = ["Answer", "DoorRequest", "answer_routed"]
