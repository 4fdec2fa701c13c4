"""Sentences for people, built from the policies' own ``@reason`` and ``@advice``
and from the conditions Cedar found true or false (``pdp.engine.whynot``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pdp.decision.model import DecisionError, Reason
from pdp.engine.whynot import ConditionResult, PolicyDiagnosis

# The closest candidates named in a no-permit sentence; the structured diagnosis has all.
MAX_NAMED = 3


def explain_allow(reasons: Sequence[Reason]) -> str:
    first = reasons[0]
    more = f" (and {len(reasons) - 1} more policies)" if len(reasons) > 1 else ""
    return f"Allowed by policy {first.policy}: {_sentence(first.message)}{more}"


def explain_forbid(reasons: Sequence[Reason],
                   diagnosis: Sequence[PolicyDiagnosis] = ()) -> str:
    first = reasons[0]
    text = f"Denied by policy {first.policy}: {_sentence(first.message)}"
    held = _held_conditions(diagnosis, first.policy)
    if held:
        text = text[:-1] + f", because {held}."
    if first.advice:
        text += f" {_sentence(first.advice)}"
    if len(reasons) > 1:
        text += f" Also forbidden by: {', '.join(r.policy for r in reasons[1:])}."
    return text


def explain_no_permit(principal: str, action: str, resource: str,
                      diagnosis: Sequence[PolicyDiagnosis] | None = None) -> str:
    """``diagnosis`` None: not computed; empty: no permit's scope covers the request."""
    text = f"Denied: no policy permits {principal} to {action} {resource}."
    if diagnosis is None:
        return text
    permits = [d for d in diagnosis if d.policy.effect == "permit" and d.scope_matched]
    if not permits:
        return text + " No permit policy applies to this principal, action and resource."
    for d in sorted(permits, key=lambda d: len(d.blocking))[:MAX_NAMED]:
        text += (f" Policy {d.policy.id} ({_clause(d.policy.reason)}) would allow it, "
                 f"but {_blocking(d.blocking)}.")
        if d.policy.advice:
            text += f" {_sentence(d.policy.advice)}"
    return text


def explain_error(error: DecisionError) -> str:
    return f"Denied ({error.code}): {_sentence(error.message)}"


def _held_conditions(diagnosis: Sequence[PolicyDiagnosis], policy: str) -> str:
    for d in diagnosis:
        if d.policy.id == policy:
            parts = [_phrase(c) for c in d.conditions if not c.blocking]
            return " and ".join(parts)
    return ""


def _blocking(conditions: Sequence[ConditionResult]) -> str:
    return " and ".join(_phrase(c) for c in conditions)


def _phrase(c: ConditionResult) -> str:
    """`cond` was false (x is 3) / `cond` held / `cond` could not be evaluated (error)."""
    if c.held is None:
        return f"`{c.condition.text}` could not be evaluated ({c.error})"
    outcome = "held" if c.held else "was false"
    values = _values(c.values)
    return f"`{c.condition.text}` {outcome}" + (f" ({values})" if values else "")


def _values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{path} is {_show(v)}" for path, v in values.items())


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _clause(text: str) -> str:
    return text.strip().rstrip(".")
