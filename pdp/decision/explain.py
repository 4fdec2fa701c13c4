"""Sentences for people, built from the policies' own ``@reason`` and ``@advice``."""

from __future__ import annotations

from collections.abc import Sequence

from pdp.decision.model import DecisionError, Reason


def explain_allow(reasons: Sequence[Reason]) -> str:
    first = reasons[0]
    more = f" (and {len(reasons) - 1} more policies)" if len(reasons) > 1 else ""
    return f"Allowed by policy {first.policy}: {_sentence(first.message)}{more}"


def explain_forbid(reasons: Sequence[Reason]) -> str:
    first = reasons[0]
    text = f"Denied by policy {first.policy}: {_sentence(first.message)}"
    if first.advice:
        text += f" {_sentence(first.advice)}"
    if len(reasons) > 1:
        text += f" Also forbidden by: {', '.join(r.policy for r in reasons[1:])}."
    return text


def explain_no_permit(principal: str, action: str, resource: str) -> str:
    return f"Denied: no policy permits {principal} to {action} {resource}."


def explain_error(error: DecisionError) -> str:
    return f"Denied ({error.code}): {_sentence(error.message)}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
