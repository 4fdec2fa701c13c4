"""Walking an app's routes, including those of included routers.

Shared by the OpenAPI document (``pdp.api.openapi``) and the ``Allow`` header
of a 405 answer (``pdp.api.problems``), which sits below it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every ``APIRoute``, inside included routers too (FastAPI keeps those as
    ``_IncludedRouter`` entries holding the ``original_router``)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


__all__ = ["api_routes"]
