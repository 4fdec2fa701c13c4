"""JSON responses rendered by orjson, for the decision endpoints.

Starlette's ``JSONResponse`` renders with ``json.dumps``; for a decision body
that is a tenth of the API layer's cost per request, and orjson does the same
work about eight times faster. The bytes are the same compact JSON (UTF-8,
no spaces); only a float NaN would differ (``null`` instead of an error), and
decision bodies carry none.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    """A ``JSONResponse`` whose body orjson renders."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


__all__ = ["FastJSONResponse"]
