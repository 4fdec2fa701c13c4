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
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json


def parse_json(raw: bytes) -> Any:
    """The JSON value in ``raw``; ``json.JSONDecodeError`` (a ``ValueError``) naming why not."""
    try:
        return from_json(raw)
    except ValueError as e:
        raise json.JSONDecodeError(str(e), raw.decode("utf-8", "replace"), 0) from None


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/<something>+json`` (parameters ignored): the
    bodies FastAPI parses as JSON, and so the decision paths too."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json"))


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

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


__all__ = ["StrictJSONRequest", "StrictJSONRoute", "is_json_media_type", "parse_json"]
