"""Why a policy did or did not apply, computed by Cedar itself.

Each policy's conditions are split into the parts a person reads: every
conjunct of a ``when`` clause (all must hold) and every disjunct of an
``unless`` clause (none may hold). Each part becomes its own probe policy
with the original policy's scope, plus one probe with the scope alone, and a
single Cedar call on the same request and entities says which probes were
satisfied and which raised errors. Nothing is guessed from policy text.

The values shown beside a condition (``context.live.risk_level is 3``) are
read from the request data the decision used: the context, the principal's
attributes, the resource's attributes (from the request or ``entities.json``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cedarpy
from cedarpy import pst

from pdp.engine import cedar_call
from pdp.engine.actions import ActionInfo
from pdp.engine.bundle import Bundle, PolicyInfo
from pdp.engine.render import entity_uid_text, render

# Explanations stay off the hot path: denies only, and at most this many policies.
MAX_CANDIDATES = 64
_PROBE_IN_ERROR = re.compile(r"policy `([^`]+)`")


@dataclass(frozen=True, slots=True)
class Condition:
    """One part of a policy's conditions, as written."""

    clause: Literal["when", "unless"]
    expr: pst.Expr
    text: str

    def blocks(self, held: bool | None) -> bool:
        """Does this outcome stop the policy from applying? (An error always does.)"""
        if held is None:
            return True
        return not held if self.clause == "when" else held


@dataclass(frozen=True, slots=True)
class ConditionResult:
    condition: Condition
    held: bool | None  # None: evaluating it raised an error
    error: str | None
    values: Mapping[str, Any]

    @property
    def blocking(self) -> bool:
        return self.condition.blocks(self.held)

    def as_dict(self) -> dict[str, Any]:
        return {"clause": self.condition.clause, "condition": self.condition.text,
                "outcome": "error" if self.held is None else ("true" if self.held else "false"),
                "blocking": self.blocking, "values": dict(self.values), "error": self.error}


@dataclass(frozen=True, slots=True)
class PolicyDiagnosis:
    """How one policy fared on one request."""

    policy: PolicyInfo
    scope_matched: bool
    conditions: tuple[ConditionResult, ...]

    @property
    def blocking(self) -> tuple[ConditionResult, ...]:
        return tuple(c for c in self.conditions if c.blocking)

    @property
    def applies(self) -> bool:
        return self.scope_matched and not self.blocking

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.id, "effect": self.policy.effect,
                "reason": self.policy.reason, "advice": self.policy.advice,
                "scope_matched": self.scope_matched, "applies": self.applies,
                "conditions": [c.as_dict() for c in self.conditions]}


def conditions_of(node: pst.Template) -> tuple[Condition, ...]:
    """The readable parts of a policy's ``when``/``unless`` clauses, in order."""
    out: list[Condition] = []
    for clause in node.clauses:
        if isinstance(clause, pst.When):
            out += [Condition("when", e, render(e)) for e in _split(clause.expr, "and")]
        else:
            out += [Condition("unless", e, render(e)) for e in _split(clause.expr, "or")]
    return tuple(out)


def _split(expr: pst.Expr, op: str) -> Iterator[pst.Expr]:
    if isinstance(expr, pst.BinaryOp) and expr.op == op:
        yield from _split(expr.left, op)
        yield from _split(expr.right, op)
    else:
        yield expr


def permit_candidates(bundle: Bundle, action: ActionInfo,
                      within: Iterable[str] | None = None) -> tuple[str, ...]:
    """Static permits whose action scope covers ``action``; ``within``: the slice of a sliced
    bundle (already exactly the policies whose scopes can match)."""
    if within is not None:
        out = sorted(pid for pid in within
                     if pid in bundle.policies and bundle.policies[pid].effect == "permit")
    else:
        out = [p.id for p in bundle.policies.values()
               if p.effect == "permit" and not p.is_template
               and action_covers(p.node.action, bundle, action)]
    return tuple(out[:MAX_CANDIDATES])


def action_covers(constraint: pst.ActionConstraint, bundle: Bundle, action: ActionInfo) -> bool:
    """Does a policy's action scope cover ``action`` (directly or through an action group)?"""
    return _action_matches(constraint, bundle.actions.ancestors(action.uid) | {action.uid})


def _action_matches(constraint: pst.ActionConstraint, uids: frozenset[tuple[str, str]]) -> bool:
    if isinstance(constraint, pst.ScopeAny):
        return True
    entities = (constraint.entity,) if isinstance(constraint, pst.ActionEq) else constraint.entities
    return any((_type_text(e.type), e.id) in uids for e in entities)


def _type_text(t: pst.EntityType) -> str:
    return "::".join((*t.namespace, t.basename))


def probe_set(bundle: Bundle, policy_ids: tuple[str, ...]) -> cedarpy.PolicySet:
    """The probes for ``policy_ids``, memoized in ``bundle.probes`` (they depend on nothing
    else)."""
    return bundle.probes.get(policy_ids, lambda: _probe_set(bundle, policy_ids))


def _probe_set(bundle: Bundle, policy_ids: Sequence[str]) -> cedarpy.PolicySet:
    probes: dict[str, pst.Template] = {}
    for i, pid in enumerate(policy_ids):
        node = bundle.policies[pid].node
        probes[f"p{i}"] = _probe(node, f"p{i}", ())
        for j, condition in enumerate(conditions_of(node)):
            # The probe holds exactly when the condition does (for unless parts too).
            probes[f"p{i}.{j}"] = _probe(node, f"p{i}.{j}", (pst.When(condition.expr),))
    return cedarpy.PolicySet.from_pst(
        pst.PolicySet(templates={}, static_policies=probes, template_links=()))


def _probe(node: pst.Template, probe_id: str, clauses: tuple[pst.Clause, ...]) -> pst.Template:
    return pst.Template(id=probe_id, effect="permit", principal=node.principal,
                        action=node.action, resource=node.resource, clauses=clauses,
                        annotations=pst.FrozenMap({}))


def diagnose(bundle: Bundle, policy_ids: Sequence[str], *, principal: Mapping[str, str],
             action: ActionInfo, resource: Mapping[str, str], context: Mapping[str, Any],
             entities: cedarpy.Entities, data: RequestData) -> list[PolicyDiagnosis]:
    """Evaluate each policy's scope and each of its conditions on this request."""
    ids = tuple(policy_ids)
    if not ids:
        return []
    result = cedar_call.is_authorized(
        principal, {"type": action.type, "id": action.id}, resource, context,
        probe_set(bundle, ids), entities, bundle.schema)
    held = set(result.reasons)
    errors = {}
    for message in result.errors:
        match = _PROBE_IN_ERROR.search(message)
        if match:
            errors[match.group(1)] = message
    out = []
    for i, pid in enumerate(ids):
        info = bundle.policies[pid]
        results = tuple(
            ConditionResult(condition=c,
                            held=None if f"p{i}.{j}" in errors else f"p{i}.{j}" in held,
                            error=_clean(errors.get(f"p{i}.{j}")), values=data.values_in(c.expr))
            for j, c in enumerate(conditions_of(info.node)))
        out.append(PolicyDiagnosis(policy=info, scope_matched=f"p{i}" in held, conditions=results))
    return out


def _clean(message: str | None) -> str | None:
    """Cedar names the probe; the reader wants the error itself."""
    if message is None:
        return None
    return re.sub(r"^error while evaluating policy `[^`]+`: ", "", message)


@dataclass(frozen=True, slots=True)
class RequestData:
    """The data a decision saw, to show the values a condition reads."""

    context: Mapping[str, Any]
    principal: Mapping[str, Any]
    # The resource's attributes as the request gives them; None: those the bundle gives
    # ``resource_uid`` (looked up only when a value is shown: a static entity is decoded
    # per lookup, pdp.engine.entity_records, and most explanations show none of it).
    resource: Mapping[str, Any] | None
    static_attrs: Mapping[tuple[str, str], Mapping[str, Any]]
    resource_uid: tuple[str, str] | None = None

    def values_in(self, expr: pst.Expr) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path in _attribute_paths(expr):
            value = self._lookup(path)
            if value is not _MISSING:
                out[".".join(path)] = _display(value)
        return out

    def _lookup(self, path: tuple[str, ...]) -> Any:
        if path[0] == "resource":
            value: Any = self.resource
            if value is None and self.resource_uid is not None:
                value = self.static_attrs.get(self.resource_uid)
        else:
            roots = {"context": self.context, "principal": self.principal}
            value = roots.get(path[0], _MISSING)
        for attr in path[1:]:
            value = self._entity_attrs(value)
            if not isinstance(value, Mapping) or attr not in value:
                return _MISSING
            value = value[attr]
        return value

    def _entity_attrs(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            ref = value.get("__entity", value)
            if set(ref) == {"type", "id"}:
                return self.static_attrs.get((ref["type"], ref["id"]), _MISSING)
        return value


_MISSING = object()


def _attribute_paths(expr: pst.Expr) -> list[tuple[str, ...]]:
    """The maximal ``var.attr.attr`` chains in ``expr`` (e.g. context.live.risk_level)."""
    found: list[tuple[str, ...]] = []

    def chain(e: pst.Expr) -> tuple[str, ...] | None:
        if isinstance(e, pst.Var):
            return (e.name,)
        if isinstance(e, pst.GetAttr):
            base = chain(e.base)
            return base + (e.attr,) if base else None
        return None

    def walk(e: Any) -> None:
        path = chain(e) if isinstance(e, pst.GetAttr) else None
        if path:
            if path not in found:
                found.append(path)
            return
        for value in _children(e):
            walk(value)

    walk(expr)
    return found


def _children(e: Any) -> Iterator[Any]:
    if isinstance(e, pst.Set):
        yield from e.elements
    elif isinstance(e, pst.Record):
        yield from e.fields.values()
    elif hasattr(e, "__dataclass_fields__"):
        for name in e.__dataclass_fields__:
            value = getattr(e, name)
            if isinstance(value, tuple):
                yield from value
            else:
                yield value


def _display(value: Any) -> Any:
    """Cedar JSON values as people write them (extension values, entity refs)."""
    if isinstance(value, Mapping):
        if "__extn" in value:
            ext = value["__extn"]
            return f'{ext.get("fn")}("{ext.get("arg")}")'
        ref = value.get("__entity", value)
        if set(ref) == {"type", "id"}:
            return entity_uid_text(pst.EntityUid(
                type=pst.EntityType(basename=ref["type"].split("::")[-1],
                                    namespace=tuple(ref["type"].split("::")[:-1])), id=ref["id"]))
        return {k: _display(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_display(v) for v in value]
    return value
