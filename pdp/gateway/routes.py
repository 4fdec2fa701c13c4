"""The gateway route table: method + path of a proxied request -> an action on a resource.

A route is configured as ``[[routes]]`` (``pdp.config.RouteConfig``)::

    [[routes]]
    method = "GET"                      # or "*" for any method
    path = "/datasets/{name}"           # {name} matches exactly one path segment
    action = "read"
    resource_type = "App::Dataset"
    resource_id = "{name}"              # templates may use path parameters and {method}

Routes are tried in configuration order and the first match wins. A request
no route matches is denied: a gateway fails closed.

Paths are matched segment by segment after percent-decoding each segment,
the way the upstream will read them. A path that could mean something else
to the upstream than to the route table is refused outright (``UnsafePath``):
``.`` or ``..`` segments, empty segments (``//``), an encoded ``/`` or ``\\``,
control characters. So ``/public/../datasets/ledger`` cannot slip past a
route for ``/public/{file}``.

This module knows no PDP types (it sits below the configuration, which
compiles every route when it loads, so a bad route is a configuration error);
``pdp.api.gateways`` turns a :class:`RouteMatch` into the decision request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_METHOD = re.compile(r"[A-Z]+|\*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RouteError(ValueError):
    """A route in the configuration is not well formed."""


class UnsafePath(ValueError):
    """The request path is ambiguous (dot segments, ``//``, encoded slashes): refused."""


class RouteSpec(Protocol):
    """What a route is configured with (``pdp.config.RouteConfig``)."""

    # Read-only properties: a model's ``dict`` field then satisfies ``Mapping``.
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def resource_type(self) -> str: ...
    @property
    def resource_id(self) -> str: ...
    @property
    def context(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled route: literal segments and ``{param}`` placeholders, in order."""

    method: str
    path: str
    segments: tuple[tuple[bool, str], ...]   # (is_param, literal text or param name)
    action: str
    resource_type: str
    resource_id: str
    context: Mapping[str, str] = field(default_factory=dict)

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        """The path parameters if ``method`` and the decoded ``segments`` match, else None."""
        if self.method != "*" and self.method != method:
            return None
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for (is_param, text), value in zip(self.segments, segments):
            if is_param:
                if not value:
                    return None
                params[text] = value
            elif text != value:
                return None
        return params


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """The resource a matched request names: its Cedar entity type and id."""

    type: str
    id: str


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """What a matched request means: action, resource and context for the PDP."""

    route: Route
    params: Mapping[str, str]
    action: str
    resource: RouteTarget
    context: Mapping[str, str]


def compile_route(spec: RouteSpec) -> Route:
    """Check and compile one configured route (raises ``RouteError``)."""
    method = spec.method.upper()
    if not _METHOD.fullmatch(method):
        raise RouteError(
            f"route {spec.path!r}: method {spec.method!r} is not an HTTP method or '*'")
    if not spec.path.startswith("/"):
        raise RouteError(f"route path {spec.path!r} must start with '/'")
    segments: list[tuple[bool, str]] = []
    params: list[str] = []
    for raw in spec.path[1:].split("/"):
        found = _PARAM.fullmatch(raw)
        if found:
            name = found.group(1)
            if name in params or name == "method":
                raise RouteError(f"route {spec.path!r}: parameter {{{name}}} is used twice "
                                 "or is reserved")
            params.append(name)
            segments.append((True, name))
        elif "{" in raw or "}" in raw:
            raise RouteError(f"route {spec.path!r}: a parameter must be a whole segment, "
                             f"like {{name}}; got {raw!r}")
        elif raw in (".", "..") or _CONTROL.search(raw):
            raise RouteError(f"route {spec.path!r}: segment {raw!r} is not allowed")
        else:
            segments.append((False, raw))
    known = set(params) | {"method"}
    for where, template in [("resource_id", spec.resource_id),
                            *((f"context.{k}", v) for k, v in spec.context.items())]:
        _check_template(spec.path, where, template, known)
    if not spec.resource_type or not spec.action:
        raise RouteError(f"route {spec.path!r}: action and resource_type are required")
    return Route(method=method, path=spec.path, segments=tuple(segments), action=spec.action,
                 resource_type=spec.resource_type, resource_id=spec.resource_id,
                 context=dict(spec.context))


def _check_template(path: str, where: str, template: str, known: set[str]) -> None:
    for name in _PARAM.findall(template):
        if name not in known:
            raise RouteError(f"route {path!r}: {where} uses {{{name}}}, which the path "
                             f"does not define (known: {', '.join(sorted(known))})")
    if "{" in _PARAM.sub("", template) or "}" in _PARAM.sub("", template):
        raise RouteError(f"route {path!r}: {where} has a stray brace: {template!r}")


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace each ``{name}`` in ``template`` with its value (names were checked)."""
    return _PARAM.sub(lambda m: values[m.group(1)], template)


def split_path(uri: str) -> list[str]:
    """The percent-decoded segments of ``uri``'s path (query dropped), or ``UnsafePath``."""
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        raise UnsafePath(f"path {path!r} does not start with '/'")
    raw_segments = path[1:].split("/")
    segments = []
    for i, raw in enumerate(raw_segments):
        try:
            value = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise UnsafePath(f"path segment {raw!r} is not percent-encoded UTF-8") from None
        last = i == len(raw_segments) - 1
        if value == "" and not last:
            raise UnsafePath(f"path {path!r} has an empty segment")
        if value in (".", ".."):
            raise UnsafePath(f"path {path!r} has a dot segment")
        if "/" in value or "\\" in value or _CONTROL.search(value):
            raise UnsafePath(f"path segment {raw!r} encodes a separator or control character")
        segments.append(value)
    return segments


@dataclass(frozen=True, slots=True)
class RouteTable:
    """The configured routes, tried in order."""

    routes: tuple[Route, ...] = ()

    @classmethod
    def from_specs(cls, specs: Iterable[RouteSpec]) -> RouteTable:
        return cls(tuple(compile_route(s) for s in specs))

    def match(self, method: str, uri: str) -> RouteMatch | None:
        """The first route matching ``method`` and ``uri``; None if none does.

        Raises ``UnsafePath`` for a path that must not be matched at all.
        """
        method = method.upper()
        segments = split_path(uri)
        for route in self.routes:
            params = route.match(method, segments)
            if params is not None:
                values = {**params, "method": method}
                return RouteMatch(
                    route=route, params=params, action=route.action,
                    resource=RouteTarget(type=route.resource_type,
                                         id=fill(route.resource_id, values)),
                    context={k: fill(v, values) for k, v in route.context.items()})
        return None

    def as_list(self) -> list[dict[str, Any]]:
        return [{"method": r.method, "path": r.path, "action": r.action,
                 "resource_type": r.resource_type, "resource_id": r.resource_id}
                for r in self.routes]


__all__ = ["Route", "RouteError", "RouteMatch", "RouteTable", "RouteTarget", "UnsafePath",
           "compile_route", "split_path"]
