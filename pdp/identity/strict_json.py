"""JSON for untrusted input: objects only, no duplicate members, no NaN.

``json.loads`` keeps the last of two members with the same name and accepts
``NaN``/``Infinity``. A JOSE header or a key set with ``{"alg": "RS256",
"alg": "none"}`` would mean different things to different parsers, so both are
refused (RFC 7515 §4: "MUST either reject ... or use a JSON parser that returns
only the lexically last"; we reject). Every failure is a ``ValueError``.
"""

from __future__ import annotations

import json
from typing import Any


def loads_object(text: str | bytes) -> dict[str, Any]:
    """Parse ``text`` as one JSON object, or raise ``ValueError``."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except RecursionError as e:  # absurdly deep nesting
        raise ValueError("JSON nested too deeply") from e
    # json.JSONDecodeError and UnicodeDecodeError are ValueErrors already.
    if not isinstance(value, dict):
        raise ValueError("JSON value is not an object")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate JSON member {name!r}")
        result[name] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


__all__ = ["loads_object"]
