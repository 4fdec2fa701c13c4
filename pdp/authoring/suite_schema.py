"""The shape of a ``pdp test`` suite file, checked before any case runs.

A typo must fail the run, not pass it: ``expect: {decison: allow}`` is an unknown key,
``policies: [nonexistent.policy]`` an unknown policy id, ``action: 5`` a wrong type. Each
problem is reported as ``file:line: where: what``, every problem of every file at once,
like ``pdp validate`` does for policies. The models below are the schema (pydantic,
``extra="forbid"``); the line comes from the YAML node the error's location points to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pdp.engine.bundle import Bundle
from pdp.reasons import ReasonCode


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PrincipalSpec(_Strict):
    id: str
    kind: str | None = None
    issuer: str | None = None
    scopes: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    actor: str | None = None
    actor_issuer: str | None = None
    earlier_actors: list[str] = Field(default_factory=list)


class EntityRef(_Strict):
    type: str
    id: str | int


class ResourceSpec(_Strict):
    type: str
    id: str | int
    attrs: dict[str, Any] | None = None
    parents: list[EntityRef] = Field(default_factory=list)


class LiveOverrides(_Strict):
    incident: bool | None = None
    incident_level: int | None = None
    risk_level: int | None = None
    global_risk_level: int | None = None
    principal_risk_level: int | None = None
    business_hours: bool | None = None
    degraded: bool | None = None
    signals: list[str] | None = None


class CredentialAges(_Strict):
    age_s: int = 30
    lifetime_s: int = 300


class GrantSpec(_Strict):
    template: str
    expires_in_s: int = 900
    principal: str | None = None
    resource: EntityRef | None = None
    task: str | None = None


class IncidentSpec(_Strict):
    scope: str = "global"
    level: int = 2
    id: str | None = None
    reason: str | None = None
    set_by: str | None = None


class AutomaticRisk(_Strict):
    level: int = 2
    evidence: list[str] = Field(default_factory=list)
    signals: list[str] = Field(default_factory=list)


class LiveState(_Strict):
    incidents: list[IncidentSpec] = Field(default_factory=list)
    global_risk: int | None = None
    principal_risk: int | None = None
    automatic_risk: AutomaticRisk | None = None


class Expectation(_Strict):
    decision: Literal["allow", "deny"]
    policies: list[str] | None = None
    reason_code: str | None = None


class CaseFields(_Strict):
    """Every key a case (or the suite's ``defaults``) may hold; all optional here, the
    required ones are checked on the case merged with its defaults."""

    description: str | None = None
    now: str | datetime | None = None
    principal: str | PrincipalSpec | None = None
    scopes: list[str] | None = None
    action: str | None = None
    resource: ResourceSpec | None = None
    context: dict[str, Any] | None = None
    live: LiveOverrides | None = None
    credential: CredentialAges | None = None
    grants: list[GrantSpec] | None = None
    live_state: LiveState | None = None
    expect: Expectation | None = None


class SuiteFile(_Strict):
    description: str | None = None
    defaults: dict[str, Any] | None = None
    cases: list[Any]


REQUIRED = ("principal", "action", "resource", "expect")

EXTENSION_PREFIX = "x-"
"""Top-level keys starting with it are the author's own (e.g. a YAML anchor to reuse,
``x-ask: &ask {...}``), as in Compose files: never read, never an error."""


def _without_extensions(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    return {k: v for k, v in data.items()
            if not (isinstance(k, str) and k.startswith(EXTENSION_PREFIX))}


def check_suite(name: str, text: str | bytes, bundle: Bundle) -> tuple[dict[str, Any], list[str]]:
    """The suite in ``text`` and every problem with it (``name:line: ...``); an empty list
    means every case may run. A file that is not YAML is one problem, and no suite."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return {}, [f"{name}: not YAML: {e}"]
    problems: list[str] = []

    def report(path: Sequence[str | int], message: str, node: yaml.Node | None = root) -> None:
        line = _line(node, path)
        where = ".".join(str(p) for p in path)
        problems.append(f"{name}:{line}: {where + ': ' if where else ''}{message}")

    try:
        SuiteFile.model_validate(_without_extensions(data))
    except ValidationError as e:
        for error in e.errors():
            report(error["loc"], _message(error))
        return {}, problems
    suite: dict[str, Any] = data
    defaults = suite.get("defaults") or {}
    _check_fields(defaults, ("defaults",), report)
    known_policies = {pid for pid, p in bundle.policies.items() if not p.is_template}
    templates = {pid for pid, p in bundle.policies.items() if p.is_template}
    codes = {c.value for c in ReasonCode}
    for i, case in enumerate(suite["cases"]):
        at: tuple[str | int, ...] = ("cases", i)
        if not isinstance(case, Mapping):
            report(at, "a case is a mapping")
            continue
        if not _check_fields(case, at, report):
            continue
        merged = {**defaults, **case}
        for key in REQUIRED:
            if key not in merged:
                report(at, f"missing `{key}`")
        grants = merged.get("grants") or []
        for j, grant in enumerate(grants):
            if grant.get("template") not in templates:
                where = at + ("grants", j, "template") if "grants" in case else ("defaults",)
                report(where, f"unknown template {grant.get('template')!r}"
                       f"{_known(templates)}")
        expect = merged.get("expect") or {}
        exp_at = at + ("expect",) if "expect" in case else ("defaults", "expect")
        granted = {f"grant:case-{j}" for j in range(len(grants))}
        for j, policy in enumerate(expect.get("policies") or []):
            if policy not in known_policies | granted:
                report(exp_at + ("policies", j), f"unknown policy id {policy!r}: the bundle "
                       f"has no such policy{_known(known_policies)}")
        code = expect.get("reason_code")
        if code is not None and code not in codes:
            report(exp_at + ("reason_code",), f"unknown reason code {code!r}")
    return suite, problems


def _check_fields(values: Mapping[str, Any], at: tuple[str | int, ...], report: Any) -> bool:
    try:
        CaseFields.model_validate(values)
    except ValidationError as e:
        for error in e.errors():
            report(at + tuple(error["loc"]), _message(error))
        return False
    return True


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "missing"
    return f"{error['msg']} (got {error.get('input')!r})"


def _known(ids: set[str]) -> str:
    if not ids:
        return ""
    shown = sorted(ids)[:8]
    return f" (known: {', '.join(shown)}{', ...' if len(ids) > len(shown) else ''})"


def _line(node: yaml.Node | None, path: Sequence[str | int]) -> int:
    """The 1-based line of the YAML node at ``path`` (or of the deepest one that exists)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for step in path:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key, value in node.value:
                if key.value == step:
                    found = value
                    line = key.start_mark.line + 1
                    break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) \
                and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:  # a union's branch name in pydantic's location, or a path that ends here
            continue
        if node is None:
            break
    return line


__all__ = ["check_suite"]
