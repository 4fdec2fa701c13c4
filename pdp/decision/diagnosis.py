"""Which policies to explain for a decision, diagnosed by Cedar (``pdp.engine.whynot``).

``diagnose_evaluation`` picks the policies worth explaining for one evaluation
(the determining ones, or the permits that could have applied) and
``diagnose_request`` diagnoses every policy an action could meet (coverage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from context.model import LiveSnapshot
from pdp.decision.cedar_request import eval_request
from pdp.decision.model import ResourceRef
from pdp.engine.bundle import Bundle
from pdp.engine.evaluate import EvalRequest, Evaluation, evaluate
from pdp.engine.grants import Grant
from pdp.engine.whynot import (
    PolicyDiagnosis,
    RequestData,
    action_covers,
    diagnose,
    permit_candidates,
)
from pdp.identity.model import VerifiedIdentity


def diagnose_request(bundle: Bundle, *, identity: VerifiedIdentity, action: str,
                     resource: ResourceRef, context: Mapping[str, Any], live: LiveSnapshot,
                     now: datetime, grants: Sequence[Grant] = ()) -> tuple[PolicyDiagnosis, ...]:
    """Every static policy whose action scope covers the request, diagnosed by Cedar.

    For coverage (``pdp test --coverage``), not for decisions: it has no budget.
    """
    action_info = bundle.actions.resolve(action)
    request = eval_request(identity, action_info, resource, context, live, now)
    active = [g for g in grants if g.active(now)]
    evaluation = evaluate(bundle, request, grants=active)
    if evaluation.entities is None:
        return ()
    ids = [p.id for p in bundle.policies.values()
           if not p.is_template and action_covers(p.node.action, bundle, action_info)]
    return tuple(diagnose(bundle, ids, principal=request.principal.uid, action=action_info,
                          resource=request.resource.uid, context=request.context,
                          entities=evaluation.entities, data=_request_data(bundle, request)))


def _request_data(bundle: Bundle, request: EvalRequest) -> RequestData:
    return RequestData(context=request.context, principal=request.principal.attrs or {},
                       resource=request.resource.attrs, static_attrs=bundle.static_attrs,
                       resource_uid=(request.resource.type, request.resource.id))


def diagnose_evaluation(bundle: Bundle, request: EvalRequest,
                        evaluation: Evaluation) -> tuple[PolicyDiagnosis, ...]:
    """The policies worth explaining, diagnosed by Cedar on the same request and entities."""
    if evaluation.entities is None:
        return ()
    determining = list(evaluation.determining)
    errored = [e.policy for e in evaluation.errors
               if e.policy is not None and e.policy in bundle.policies]
    # Cedar denies only by forbids, so a deny's determining policies are all forbids (a
    # task grant's linked policy among them: its id is not a bundle policy's).
    forbids = [] if evaluation.cedar_allowed else determining
    if evaluation.allowed:
        ids = determining
    elif forbids or evaluation.errored_forbids:
        ids = forbids + list(evaluation.errored_forbids)
    else:
        ids = list(permit_candidates(bundle, request.action, evaluation.candidates))
    # Only the bundle's own policies are diagnosed; a grant is explained by its reason.
    ids = [p for p in dict.fromkeys(ids + errored) if p in bundle.policies]
    data = _request_data(bundle, request)
    found = diagnose(bundle, ids, principal=request.principal.uid, action=request.action,
                     resource=request.resource.uid, context=request.context,
                     entities=evaluation.entities, data=data)
    # A permit whose scope does not cover the request explains nothing.
    return tuple(d for d in found if d.scope_matched)


__all__ = ["diagnose_evaluation", "diagnose_request"]
