"""Validate each shape of request against the schema once, not on every request.

With a schema, Cedar type-checks and builds every request from its JSON (most
of the cost of a small decision). What the PDP puts in a request — the
principal, ``context.live``, ``context.credential`` — is valid by
construction; only the PEP's part varies. So the first request of each
*shape* (action, principal and resource types, and the JSON kinds of the PEP's
context) is evaluated with the schema, and later requests of that shape skip
the schema only once two checks prove that the schema cannot change their
answer (https://docs.cedarpolicy.com/auth/entities-syntax.html#schema-based-parsing):

1. Cedar without the schema answers exactly as with it (decision, determining
   policies, errors) for that first request.
2. A *poisoned* copy of it still builds with the schema: every string of the
   PEP's context replaced by ``PROBE_STRING`` (which no extension constructor
   — ``ip``, ``decimal``, ``datetime``, ``duration`` — accepts) and the
   principal and resource ids by ``PROBE_ID`` (which no enumerated entity type
   declares). Within a shape, the schema reads a JSON value differently from
   Cedar's schema-less reading only where it types a string as an extension
   (or an entity) or an id's type as an enumeration; exactly then Cedar refuses
   the poisoned copy, and the shape is never remembered.

Without check 2, one request from ``"10.0.0.1"`` taught the cache that
``client_ip`` needed no schema, and ``"10.6.6.6"`` then stayed a plain string
that ``ip("10.6.6.6")`` never equals; likewise ``Color::"blue"`` slipped past
an ``enum ["red"]`` after a ``Color::"red"`` request. We chose this check over
a key that carries the schema's types of every value because it asks Cedar
itself (no second reading of the schema to keep in step) and costs two more
Cedar calls per new shape only. A shape with values whose meaning a schema
could change in other ways (entity or extension forms, floats, nulls) is never
remembered.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from typing import Any

_ENTITY_OR_EXTENSION = ({"type", "id"}, {"fn", "arg"})
_MAX_SHAPES = 4096

# Not an IP address, decimal, datetime or duration, and (with its NUL) no one's enum value.
PROBE_STRING = "\x00pdp-probe"
PROBE_ID = "\x00pdp-probe"


def shape_of(value: Any) -> Hashable | None:
    """The JSON kinds of ``value``; None when the schema could read it differently."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long" if -(2**63) <= value < 2**63 else None
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        elements = [shape_of(v) for v in value]
        if any(e is None for e in elements):
            return None
        return ("set", frozenset(elements))
    if isinstance(value, dict):
        keys = set(value)
        if "__entity" in keys or "__extn" in keys or keys in _ENTITY_OR_EXTENSION:
            return None
        fields = tuple(sorted((k, shape_of(v)) for k, v in value.items()))
        if any(s is None for _, s in fields):
            return None
        return ("record", fields)
    return None


def poisoned(value: Any) -> Any:
    """``value`` with every string (at any depth) replaced by ``PROBE_STRING``."""
    if isinstance(value, str):
        return PROBE_STRING
    if isinstance(value, list):
        return [poisoned(v) for v in value]
    if isinstance(value, dict):
        return {k: poisoned(v) for k, v in value.items()}
    return value


class RequestShapes:
    """The request shapes proven to evaluate the same without the schema (see above), and
    those proven not to (remembered too, so that they are checked once, not per request)."""

    def __init__(self) -> None:
        self._verdicts: dict[Hashable, bool] = {}
        self._lock = threading.Lock()

    def key(self, action: tuple[str, str], principal_type: str, resource_type: str,
            pep_context: Mapping[str, Any]) -> Hashable | None:
        context = shape_of(dict(pep_context))
        return None if context is None else (action, principal_type, resource_type, context)

    def verdict(self, key: Hashable | None) -> bool | None:
        """True: skip the schema; False: keep it; None: not yet known (check this request)."""
        return None if key is None else self._verdicts.get(key)

    def known(self, key: Hashable | None) -> bool:
        return self.verdict(key) is True

    def remember(self, key: Hashable, schema_free: bool = True) -> None:
        with self._lock:
            if len(self._verdicts) < _MAX_SHAPES:
                self._verdicts[key] = schema_free
