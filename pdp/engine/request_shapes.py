"""Validate each shape of request against the schema once, not on every request.

With a schema, Cedar type-checks and builds every request from its JSON (most
of the cost of a small decision). What the PDP puts in a request — the
principal, ``context.live``, ``context.credential`` — is valid by
construction; only the PEP's part varies. So the first request of each
*shape* (action, principal and resource types, and the JSON kinds of the PEP's
context) is evaluated with the schema **and** without it; when both agree
(decision, determining policies, errors), later requests of that shape skip
the schema. A shape with values whose meaning a schema could change (entity
or extension forms, floats, nulls) is never remembered.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from typing import Any

_ENTITY_OR_EXTENSION = ({"type", "id"}, {"fn", "arg"})
_MAX_SHAPES = 4096


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


class RequestShapes:
    """The request shapes already known to evaluate the same without the schema."""

    def __init__(self) -> None:
        self._known: set[Hashable] = set()
        self._lock = threading.Lock()

    def key(self, action: tuple[str, str], principal_type: str, resource_type: str,
            pep_context: Mapping[str, Any]) -> Hashable | None:
        context = shape_of(dict(pep_context))
        return None if context is None else (action, principal_type, resource_type, context)

    def known(self, key: Hashable | None) -> bool:
        return key is not None and key in self._known

    def remember(self, key: Hashable) -> None:
        with self._lock:
            if len(self._known) < _MAX_SHAPES:
                self._known.add(key)
