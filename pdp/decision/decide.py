"""``decide()``: one verified identity + one request -> one ``Decision``.

A plain function with no I/O: the bundle, the live snapshot and the time are
passed in, so the HTTP API, ``pdp check``, ``pdp test`` and replays all get
exactly the same answer for the same inputs. Errors come back as deny
decisions with reason codes, never as exceptions.

Its parts, each importable without this module (so none imports back):
``cedar_request`` (what Cedar sees of the request), ``outcomes`` (the decision
for each way a request ends), ``diagnosis`` (why-not explanations) and
``delegation`` (the acting workload of an RFC 8693 token). Their public names
are re-exported here, where callers have always found them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import uuid_utils

from context.model import LiveSnapshot
from pdp.decision.cedar_request import (
    ASSERTED_KIND,
    UNKNOWN_SECONDS,
    asserted_principal,
    cedar_context,
    credential_facts,
    eval_request,
    principal_entity,
)
from pdp.decision.delegation import check_actor, with_credential_flags
from pdp.decision.diagnosis import diagnose_evaluation, diagnose_request
from pdp.decision.identity_parts import IdentityParts
from pdp.decision.model import Decision, DecisionError, ResourceRef
from pdp.decision.outcomes import Outcomes, valid_until
from pdp.engine.actions import UnknownAction
from pdp.engine.bundle import Bundle
from pdp.engine.evaluate import EntityInput, EvalRequest, Evaluation, evaluate
from pdp.engine.grants import Grant
from pdp.engine.pdp_schema import WORKLOAD_TYPE, reserved_key
from pdp.identity.model import VerifiedIdentity
from pdp.reasons import ReasonCode

DEFAULT_MAX_TTL = timedelta(minutes=5)


def new_decision_id() -> str:
    """A UUIDv7: unique, and sortable by time like Cerbos's call ids."""
    return str(uuid_utils.uuid7())


def decide(
    bundle: Bundle | None,
    *,
    identity: VerifiedIdentity,
    action: str,
    resource: ResourceRef,
    context: Mapping[str, Any],
    live: LiveSnapshot,
    now: datetime,
    max_ttl: timedelta = DEFAULT_MAX_TTL,
    decision_id: Callable[[], str] = new_decision_id,
    explain: bool | None = None,
    principal: EntityInput | None = None,
    grants: Sequence[Grant] = (),
    parts: IdentityParts | None = None,
) -> Decision:
    """Evaluate ``action`` on ``resource`` for a verified ``identity`` at ``now``.

    ``explain``: diagnose which policies applied and why (``pdp.engine.whynot``).
    None (the default) diagnoses denies only, keeping allows on the fast path.
    ``principal``: the Cedar principal when it is not the identity's
    ``Pdp::Workload`` (an asserted subject of its own type, see ``asserted_principal``).
    ``grants``: task grants to link (pass those active at ``now``; expired ones are skipped).
    ``parts``: the caller's memo of the identity's principal entity (a ``DecisionService``
    passes its own); without it the entity is built afresh, to the same value.
    """
    outcome = Outcomes(decision_id=decision_id(), now=now, identity=identity, action=action,
                       resource=resource.cedar, live=live, bundle=bundle, max_ttl=max_ttl,
                       principal_type=principal.type if principal else WORKLOAD_TYPE)
    if bundle is None:
        return outcome.error(DecisionError(
            ReasonCode.ENGINE_NO_BUNDLE, "no valid policy bundle is loaded"))
    reserved = reserved_key(context)
    if reserved is not None:
        return outcome.error(DecisionError(
            ReasonCode.REQUEST_INVALID,
            f"context.{reserved} is reserved: live context comes only from the PDP"))
    try:
        action_info = bundle.actions.resolve(action)
    except UnknownAction as e:
        return outcome.error(DecisionError(ReasonCode.REQUEST_UNKNOWN_ACTION, str(e)))
    outcome.action, outcome.action_name = action_info.cedar, action_info.id
    outcome.live_used = action_info.declares_live
    active = [g for g in grants if g.active(now)]
    outcome.grants = {g.link_id: g for g in active}

    # context.credential, computed once: Cedar reads it and the decision carries it to
    # its record (``credential_context``), which would otherwise compute it again.
    outcome.credential = (credential_facts(identity, now) if action_info.declares_credential
                          else None)
    workload = principal or (parts.workload(identity) if parts is not None else None)
    request = eval_request(identity, action_info, resource, context, live, now, workload,
                           outcome.credential)
    def run(req: EvalRequest) -> Evaluation:
        return evaluate(bundle, req, grants=active)

    evaluation = run(request)
    wanted = explain if explain is not None else not evaluation.allowed
    diagnosis = diagnose_evaluation(bundle, request, evaluation) if wanted else None
    decision = outcome.of(evaluation, bundle, diagnosis)
    if decision.allowed and identity.actor is not None and principal is None:
        # RFC 8693 delegation: the acting workload must be allowed too (pdp.decision.delegation).
        decision = check_actor(decision, identity=identity, request=request, outcome=outcome,
                               bundle=bundle, run=run, explain=explain, max_ttl=max_ttl)
    if identity.flags:  # e.g. over the issuer's maximum lifetime, accepted and flagged
        decision = with_credential_flags(decision, identity)
    return decision


__all__ = [
    "ASSERTED_KIND", "DEFAULT_MAX_TTL", "UNKNOWN_SECONDS", "Outcomes", "asserted_principal",
    "cedar_context", "credential_facts", "decide", "diagnose_request", "new_decision_id",
    "principal_entity", "valid_until",
]
