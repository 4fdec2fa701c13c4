"""A route table: method + path pattern -> action on a resource (the middleware's map).

The same rules as the PDP's gateway routes (``[[routes]]`` in ``pdp.toml``), so
one table can serve both: ``{name}`` matches one path segment, routes are
tried in order, templates may use the path parameters and ``{method}``, and a
path with ``.``/``..``/empty segments or an encoded ``/`` matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from pdp_client.models import Resource

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """``Route("GET", "/datasets/{name}", action="read", resource_type="App::Dataset",
    resource_id="{name}")``."""

    method: str
    path: str
    action: str
    resource_type: str
    resource_id: str
    context: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"route path {self.path!r} must start with '/'")
        names = [m.group(1) for s in self.path[1:].split("/") if (m := _PARAM.fullmatch(s))]
        known = set(names) | {"method"}
        for template in (self.resource_id, *self.context.values()):
            unknown = set(_PARAM.findall(template)) - known
            if unknown:
                raise ValueError(f"route {self.path!r} uses undefined {sorted(unknown)}")

    @classmethod
    def of(cls, value: Route | Mapping[str, Any]) -> Route:
        if isinstance(value, Route):
            return value
        return cls(method=str(value.get("method", "*")), path=str(value["path"]),
                   action=str(value["action"]), resource_type=str(value["resource_type"]),
                   resource_id=str(value["resource_id"]), context=dict(value.get("context") or {}))

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if self.method != "*" and self.method.upper() != method:
            return None
        pattern = self.path[1:].split("/")
        if len(pattern) != len(segments):
            return None
        params: dict[str, str] = {}
        for part, value in zip(pattern, segments):
            found = _PARAM.fullmatch(part)
            if found:
                if not value:
                    return None
                params[found.group(1)] = value
            elif part != value:
                return None
        return params


@dataclass(frozen=True, slots=True)
class RouteMatch:
    action: str
    resource: Resource
    context: Mapping[str, str]
    params: Mapping[str, str]


def segments_of(path: str) -> list[str] | None:
    """Percent-decoded segments, or None for an ambiguous path (never matched)."""
    if not path.startswith("/"):
        return None
    raw = path[1:].split("/")
    out = []
    for i, part in enumerate(raw):
        try:
            value = unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None
        if (value == "" and i != len(raw) - 1) or value in (".", "..") or "/" in value \
                or "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7f for c in value):
            return None
        out.append(value)
    return out


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PARAM.sub(lambda m: values[m.group(1)], template)


def match(routes: Sequence[Route], method: str, path: str) -> RouteMatch | None:
    """The first route matching ``method`` and ``path`` (no query string), else None."""
    segments = segments_of(path.split("?", 1)[0])
    if segments is None:
        return None
    method = method.upper()
    for route in routes:
        params = route.match(method, segments)
        if params is not None:
            values = {**params, "method": method}
            return RouteMatch(action=route.action,
                              resource=Resource(route.resource_type,
                                                _fill(route.resource_id, values)),
                              context={k: _fill(v, values) for k, v in route.context.items()},
                              params=params)
    return None


__all__ = ["Route", "RouteMatch", "match", "segments_of"]
