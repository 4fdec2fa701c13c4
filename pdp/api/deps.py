"""How routers reach the wired parts: one ``Components`` on the app, through ``Depends``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from pdp.components import Components


async def get_components(request: Request) -> Components:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per
    # request for one attribute read (measured: ~15% of a decision's CPU over HTTP).
    components: Components = request.app.state.components
    return components


ComponentsDep = Annotated[Components, Depends(get_components)]


def request_id(request: Request) -> str | None:
    """The ``X-Request-ID`` header, as ``request.headers.get("x-request-id")`` reads it
    (the first one, latin-1; ASGI gives header names lowercased), without the ``KeyError``
    that ``Mapping.get`` raises and catches inside when it is absent, the usual case."""
    for key, value in request.headers.raw:
        if key == b"x-request-id":
            return value.decode("latin-1")
    return None


def echoed_id(rid: str | None) -> dict[str, str]:
    """The headers that echo a request's ``X-Request-ID`` (``rid``) in its answer: none
    when it sent none."""
    return {"x-request-id": rid} if rid else {}


def with_echoed_id(rid: str | None, response: Response) -> Response:
    """``response`` echoing the request's ``X-Request-ID`` (``rid``), like every decision
    answer."""
    response.headers.update(echoed_id(rid))
    return response

