"""The one call into Cedar.

cedarpy's public ``is_authorized`` wraps its extension with a copy of the
request, a ``json.dumps`` of the context, a batch of one and result objects;
on a small bundle that wrapper is a tenth of the cost. We call the extension
the same way the wrapper does (``is_authorized_batch`` with the context as a
JSON string and the ``Entities`` handle's inner object) and read the result
JSON ourselves, with orjson (the stdlib's ``json`` cost a tenth of a small
decision). cedarpy is pinned to an exact version for this reason, and
``tests/decision/test_decide_matches_cedar.py`` checks every decision against
the public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy
import orjson
from cedarpy import _internal


@dataclass(frozen=True, slots=True)
class CedarResult:
    decision: str  # "Allow" | "Deny" | "NoDecision"
    reasons: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.decision == "Allow"

    def same_answer(self, other: CedarResult) -> bool:
        """The same decision, determining policies and errors. Cedar lists the policies
        and errors of one answer in no fixed order (it collects them in a hash set);
        ``is_authorized`` sorts them, and they are compared as sets all the same."""
        return (self.decision == other.decision and set(self.reasons) == set(other.reasons)
                and set(self.errors) == set(other.errors))


def is_authorized(principal: Mapping[str, str], action: Mapping[str, str],
                  resource: Mapping[str, str], context: Mapping[str, Any],
                  policy_set: cedarpy.PolicySet, entities: cedarpy.Entities,
                  schema: cedarpy.Schema | None) -> CedarResult:
    """Cedar's decision for one request, with the determining policy ids and errors.

    Without ``schema`` Cedar neither type-checks the request nor reads its values by
    the schema's types (see ``pdp.engine.request_shapes`` for when that is the same).
    """
    return is_authorized_json(principal, action, resource, orjson.dumps(context).decode(),
                              policy_set, entities, schema)


def is_authorized_json(principal: Mapping[str, str], action: Mapping[str, str],
                       resource: Mapping[str, str], context_json: str,
                       policy_set: cedarpy.PolicySet, entities: cedarpy.Entities,
                       schema: cedarpy.Schema | None) -> CedarResult:
    """``is_authorized`` with the context already in JSON, exactly as Cedar reads it
    (``pdp.engine.answer_memo`` keys its answers by that text)."""
    request = {"principal": principal, "action": action, "resource": resource,
               "context": context_json}
    raw = _internal.is_authorized_batch([request], policy_set, entities._inner, schema, False)
    result = orjson.loads(raw[0])
    diagnostics = result.get("diagnostics") or {}
    # Sorted: Cedar lists them in hash order, which differs from call to call, and the
    # explanation names the first; the same question now reads the same every time.
    return CedarResult(decision=result.get("decision") or "NoDecision",
                       reasons=tuple(sorted(diagnostics.get("reason") or ())),
                       errors=tuple(sorted(diagnostics.get("errors") or ())))
