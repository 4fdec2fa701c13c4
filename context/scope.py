"""The tags of a request's resource, which incidents can be scoped to.

A resource's tags are its ``tags`` attribute (a Cedar ``Set<String>``): from the
attributes the PEP sends for a resource the bundle does not define, or from
the bundle's ``entities.json`` for one it does. A bundle that wants to scope
incidents by tag declares ``tags?: Set<String>`` on its resource types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

TAGS_ATTR = "tags"
ENTITIES_FILE = "entities.json"


# Read-only properties, so that the engine's frozen dataclasses satisfy these protocols.
class _Resource(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def attrs(self) -> Mapping[str, Any] | None: ...


class _Bundle(Protocol):
    @property
    def files(self) -> Mapping[str, bytes]: ...


def resource_tags(resource: _Resource, bundle: _Bundle | None) -> frozenset[str]:
    """The resource's ``tags``: the PEP's attributes first, else the bundle's entity."""
    if resource.attrs is not None:
        return _tags(resource.attrs.get(TAGS_ATTR))
    if bundle is None:
        return frozenset()
    raw = bundle.files.get(ENTITIES_FILE)
    if raw is None:
        return frozenset()
    return _static_tags(raw).get((resource.type, resource.id), frozenset())


@lru_cache(maxsize=4)
def _static_tags(entities_json: bytes) -> dict[tuple[str, str], frozenset[str]]:
    """Tags of every static entity that has some (parsed once per bundle version)."""
    try:
        entities = json.loads(entities_json)
    except ValueError:
        return {}
    out: dict[tuple[str, str], frozenset[str]] = {}
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        uid, attrs = entity.get("uid") or {}, entity.get("attrs") or {}
        tags = _tags(attrs.get(TAGS_ATTR)) if isinstance(attrs, dict) else frozenset()
        if tags and isinstance(uid, dict):
            out[(str(uid.get("type")), str(uid.get("id")))] = tags
    return out


def _tags(value: Any) -> frozenset[str]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


__all__ = ["resource_tags"]
