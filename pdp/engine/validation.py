"""Strict Cedar validation of one policy file, reported once per mistake in the author's terms.

The PDP's admin actions (``Pdp::Action::"policy.reload"`` on ``Pdp::Admin``,
``pdp.engine.pdp_schema``) share one schema with the bundle's own actions, so
that one policy set decides both. Cedar's strict validator checks a policy
against every action its scope allows
(https://docs.cedarpolicy.com/policies/validation.html), so an open-action
policy of the bundle — ``forbid (principal, action, resource) unless {
context.authenticated };`` — would be checked against admin contexts it was
never written for. The validation is therefore scoped:

- a policy that names ``Pdp::Action`` or ``Pdp::Admin`` is validated against
  the full schema (the bundle's plus the whole ``Pdp`` namespace);
- any other policy loads when it validates against the bundle's schema plus the
  ``Pdp`` *types* (no admin actions), or against the full schema.

Evaluation is not scoped: an open-action policy still applies to admin
requests exactly as Cedar evaluates it, and a ``forbid`` that errors there
denies (``pdp.engine.evaluate`` fails closed). A ``forbid`` that would error
on admin actions is reported as a warning, since it locks out administrators.

Cedar repeats a mistake once per action it checked (one mistyped attribute,
22 errors) and names policies by position (``policy0``); each message here is
said once, with the file, the line and the author's own policy id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import cedarpy

from pdp.engine.policy_source import PolicySpan
from pdp.engine.problems import BundleProblem

_NAMES_ADMIN = re.compile(r"\bPdp\s*::\s*(?:Action|Admin)\b")
_FOR_POLICY = re.compile(r"^for policy `[^`]*`,\s*")
_ACTION_UID = re.compile(r'(?:[A-Za-z_]\w*::)*Action::"(?:[^"\\]|\\.)*"')
_EFFECT = re.compile(r"\b(permit|forbid)\s*\(")
# Actions named in a message that Cedar repeated for several of them.
MAX_ACTIONS_NAMED = 3


@dataclass(frozen=True, slots=True)
class FileFindings:
    problems: tuple[BundleProblem, ...]
    warnings: tuple[BundleProblem, ...]


def generated_id(file: str, index: int) -> str:
    """The id of a policy written without ``@id``: its file and position (Cedar's ``policy<N>``)."""
    return f"{file}#{index}"


def check_full(text: str, full_schema: cedarpy.Schema) -> cedarpy.ValidationResult:
    """Cedar's validation of ``text`` against the full schema, the GIL released while
    Cedar works (the loader runs it in a helper thread, beside its parse)."""
    return cedarpy.validate_policies(text, full_schema, release_gil=True)


def validate_file(file: str, text: str, spans: Sequence[PolicySpan],
                  user_schema: cedarpy.Schema, full_schema: cedarpy.Schema, *,
                  full: cedarpy.ValidationResult | None = None) -> FileFindings:
    """Validate ``text`` (the policies of ``file``, split into ``spans``) as described above.

    ``spans`` may be empty when the file could not be split: every policy is then
    held to the full schema and named without a line. ``full``: :func:`check_full` of
    ``text``, when it was already run.
    """
    if full is None:
        full = check_full(text, full_schema)
    if full.validation_passed:
        return FileFindings((), ())
    user = cedarpy.validate_policies(text, user_schema, release_gil=True)
    labels = {**{f"policy{i}": generated_id(file, i) for i in range(len(spans))},
              **full.id_annotations_by_policy_id}
    by_full, by_user = _by_policy(full.errors), _by_policy(user.errors)
    problems: list[BundleProblem] = []
    warnings: list[BundleProblem] = []
    for cedar_id, errors in by_full.items():
        span = _span(spans, cedar_id)
        label, line = labels.get(cedar_id, cedar_id), span.line if span else None
        if span is None or _NAMES_ADMIN.search(span.code):
            reported = errors
        else:
            reported = by_user.get(cedar_id, [])
            if not reported and _effect(span) == "forbid":
                warnings += [BundleProblem(
                    file, "applies to the PDP's admin actions too, where Cedar's validator "
                          f"reports: {m}; an admin request it matches is denied (engine.error)",
                    label, line) for m in collapse(errors)]
        problems += [BundleProblem(file, m, label, line) for m in collapse(reported)]
    return FileFindings(tuple(problems), tuple(warnings))


def collapse(messages: Sequence[str]) -> list[str]:
    """Cedar's messages for one policy, each mistake once: without Cedar's ``for policy
    `policy0`,`` and with the actions a message was repeated for listed after it."""
    actions: dict[str, list[str]] = {}
    for message in messages:
        message = _FOR_POLICY.sub("", message)
        found = _ACTION_UID.findall(message)
        key = _ACTION_UID.sub("{action}", message)
        named = actions.setdefault(key, [])
        named += [a for a in found[:1] if a not in named]
    out = []
    for key, named in actions.items():
        text = key.replace("{action}", named[0], 1) if named else key
        if len(named) > 1:
            shown = ", ".join(named[1:1 + MAX_ACTIONS_NAMED])
            more = len(named) - 1 - MAX_ACTIONS_NAMED
            text += f" (also for {shown}{f' and {more} more' if more > 0 else ''})"
        out.append(text)
    return out


def _by_policy(errors: Sequence[cedarpy.ValidationError]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for error in errors:
        out.setdefault(error.policy_id, []).append(error.error)
    return out


def _span(spans: Sequence[PolicySpan], cedar_id: str) -> PolicySpan | None:
    index = cedar_id.removeprefix("policy")
    return spans[int(index)] if index.isdigit() and int(index) < len(spans) else None


def _effect(span: PolicySpan) -> str | None:
    # Annotations come first and their values are strings, which may hold "permit(".
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', span.code)
    found = _EFFECT.search(code)
    return found.group(1) if found else None
