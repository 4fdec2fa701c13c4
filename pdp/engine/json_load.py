"""``json.loads``' result, parsed by orjson where that gives the same value.

A bundle's ``entities.json`` is parsed on every start and reload; at 10,000 policies it
is a megabyte, which the standard library parses in about half a second with the GIL
held, and orjson in a few milliseconds. The two agree on every text orjson accepts,
save one kind: an integer beyond 64 bits, which orjson turns into a float. Such an
integer is at least 19 digits long, so a text with a run of 19 digits anywhere (an id
like ``"1234567890123456789"`` too, harmlessly) is left to the standard library, as is
every text orjson refuses (``NaN``, ``1e400``, a byte-order mark, lone surrogates,
UTF-16), so that the value or the error is always the standard library's own.
``tests/engine/test_json_load.py`` checks the two equal on generated texts.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# The shortest integer that may not fit in 64 bits (2**63 has 19 digits).
_MAYBE_BIG_INTEGER = re.compile(rb"[0-9]{19}")


def load_json(data: bytes) -> Any:
    """``json.loads(data)``: the same value, or the same exception."""
    if _MAYBE_BIG_INTEGER.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the standard library decides, and words the error
    return json.loads(data)


__all__ = ["load_json"]
