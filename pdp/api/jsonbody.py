"""Request bodies parsed as strict JSON, the same way on every door.

Python's ``json.loads`` accepts text that cannot be stored or answered: a lone
surrogate escape (``"\\udfff"``) is not a Unicode scalar value, so it cannot be
encoded as UTF-8 (the decision log's hash, the response) and turned into a 500;
JSON nested a thousand deep raised ``RecursionError``. RFC 8259 §8.2 calls such
strings' behaviour unpredictable and I-JSON (RFC 7493 §2.1) forbids them, so the
PDP refuses them up front as **400 malformed JSON**, like any syntax error.

One parser does it: pydantic-core's (jiter), which the ``/v1/authorize`` fast
path already uses through ``model_validate_json``. It rejects lone surrogates
and nesting deeper than ~200 (NaN and Infinity pass, as they always did);
:class:`StrictJSONRoute` makes FastAPI's body parsing use it too, so the fast
path and the routes accept exactly the same bytes. Ref: https://www.rfc-editor.org/rfc/rfc7493#section-2.1
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

from pdp.api.problems import problem


def parse_json(raw: bytes) -> Any:
    """The JSON value in ``raw``; ``json.JSONDecodeError`` (a ``ValueError``) naming why not."""
    try:
        return from_json(raw)
    except ValueError as e:
        raise json.JSONDecodeError(str(e), raw.decode("utf-8", "replace"), 0) from None


class StrictJSONRequest(Request):
    """A ``Request`` whose ``json()`` is :func:`parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """An ``APIRoute`` that parses JSON bodies with :func:`parse_json` (``route_class=``).

    Ref: https://fastapi.tiangolo.com/how-to/custom-request-and-route/
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def strict(request: Request) -> Response:
            strict_request = StrictJSONRequest(request.scope, request.receive)
            if takes_body:
                refused = await unsupported_media_type(strict_request)
                if refused is not None:
                    return refused
            return await handler(strict_request)

        return strict


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` structured syntax suffix (RFC 6839), any parameters."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json"))


async def unsupported_media_type(request: Request) -> Response | None:
    """A **415** problem when a body meant to be JSON is not declared as JSON, else None.

    FastAPI would parse an undeclared body as JSON and answer a form-encoded one
    (what ``curl -d`` sends without ``-H 'content-type: application/json'``) with a
    422 saying the body is missing: true, but it sends the caller looking at their
    fields instead of their header. A request that declares another media type,
    or declares none and still sends bytes, is told what to send; an empty body
    without a content type stays FastAPI's 422 (the body is missing). RFC 9110 §15.5.16.
    """
    return await refused_media_type(request.headers.get("content-type"), request.body)


async def refused_media_type(content_type: str | None,
                             body: Callable[[], Awaitable[bytes]]) -> Response | None:
    """:func:`unsupported_media_type` from the request's ``content-type`` header (None
    without one) and its ``body`` (read only when there is no such header): the one
    rule of every JSON door, the decision doors' included (:mod:`pdp.api.door`)."""
    if content_type is None:
        if not await body():
            return None
    elif is_json_media_type(content_type):
        return None
    return problem(415, "Unsupported media type",
                   f"the body must be JSON, sent with content-type: application/json "
                   f"(got {content_type or 'no content type'})")


__all__ = ["StrictJSONRequest", "StrictJSONRoute", "is_json_media_type", "parse_json",
           "refused_media_type", "unsupported_media_type"]
