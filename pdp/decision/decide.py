"""``decide()``: one verified identity + one request -> one ``Decision``.

A plain function with no I/O: the bundle, the live snapshot and the time are
passed in, so the HTTP API, ``pdp check``, ``pdp test`` and replays all get
exactly the same answer for the same inputs. Errors come back as deny
decisions with reason codes, never as exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import uuid_utils

from context.model import LiveSnapshot
from pdp.decision.explain import explain_allow, explain_error, explain_forbid, explain_no_permit
from pdp.decision.model import Decision, DecisionError, Reason, ResourceRef
from pdp.decision.reasons import ReasonCode
from pdp.engine.actions import ActionInfo, UnknownAction, cedar_uid
from pdp.engine.bundle import Bundle
from pdp.engine.evaluate import EntityInput, EvalRequest, Evaluation, evaluate
from pdp.engine.pdp_schema import (
    CREDENTIAL_ATTR, GROUP_TYPE, LIVE_ATTR, RESERVED_CONTEXT_ATTRS, WORKLOAD_TYPE,
)
from pdp.identity.model import VerifiedIdentity

# Reported for a credential age or lifetime we cannot know (no iat): counts as old.
UNKNOWN_SECONDS = 2**31 - 1
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
) -> Decision:
    """Evaluate ``action`` on ``resource`` for a verified ``identity`` at ``now``."""
    outcome = Outcomes(decision_id=decision_id(), now=now, identity=identity, action=action,
                       resource=resource.cedar, live=live, bundle=bundle, max_ttl=max_ttl)
    if bundle is None:
        return outcome.error(DecisionError(
            ReasonCode.ENGINE_NO_BUNDLE, "no valid policy bundle is loaded"))
    reserved = [k for k in RESERVED_CONTEXT_ATTRS if k in context]
    if reserved:
        return outcome.error(DecisionError(
            ReasonCode.REQUEST_INVALID,
            f"context.{reserved[0]} is reserved: live context comes only from the PDP"))
    try:
        action_info = bundle.actions.resolve(action)
    except UnknownAction as e:
        return outcome.error(DecisionError(ReasonCode.REQUEST_UNKNOWN_ACTION, str(e)))
    outcome.action, outcome.action_name = action_info.cedar, action_info.id

    request = EvalRequest(
        principal=principal_entity(identity),
        action=action_info,
        resource=EntityInput(type=resource.type, id=resource.id, attrs=resource.attrs,
                             parents=resource.parents),
        context=cedar_context(action_info, context, live, identity, now),
    )
    return outcome.of(evaluate(bundle, request), bundle)


def principal_entity(identity: VerifiedIdentity) -> EntityInput:
    """The ``Pdp::Workload`` entity for a verified identity."""
    return EntityInput(
        type=WORKLOAD_TYPE,
        id=identity.principal_id,
        attrs={
            "trust_domain": identity.trust_domain,
            "path": identity.path,
            "issuer": identity.issuer,
            "credential_kind": identity.kind,
            "scopes": sorted(identity.scopes),
            "groups": sorted(identity.groups),
        },
        parents=tuple((GROUP_TYPE, g) for g in sorted(identity.groups)),
        cache_key=identity,
    )


def credential_facts(identity: VerifiedIdentity, now: datetime) -> dict[str, Any]:
    """The value of ``context.credential`` (Cedar type ``Pdp::Credential``)."""
    issued = identity.issued_at or identity.not_before
    expires = identity.expires_at
    return {
        "kind": identity.kind,
        "age_s": _seconds(now - issued) if issued else UNKNOWN_SECONDS,
        "ttl_s": max(0, _seconds(expires - now)) if expires else 0,
        "lifetime_s": _seconds(expires - issued) if issued and expires else UNKNOWN_SECONDS,
        "delegated": identity.actor is not None,
        "actor": identity.actor or "",
        "chain_depth": identity.chain_depth,
    }


def cedar_context(action: ActionInfo, context: Mapping[str, Any], live: LiveSnapshot,
                  identity: VerifiedIdentity, now: datetime) -> dict[str, Any]:
    """The PEP's context at the top level, plus ``live``/``credential`` where the action declares them."""
    out = dict(context)
    if action.declares_live:
        out[LIVE_ATTR] = live.to_cedar()
    if action.declares_credential:
        out[CREDENTIAL_ATTR] = credential_facts(identity, now)
    return out


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _reason(bundle: Bundle, policy_id: str) -> Reason:
    info = bundle.policies.get(policy_id)
    if info is None:
        return Reason(policy=policy_id, effect="permit", message=f"policy {policy_id}")
    return Reason(policy=policy_id, effect=info.effect, message=info.reason, advice=info.advice)


class Outcomes:
    """Builds the ``Decision`` for each way a request can end, with the fields all share."""

    def __init__(self, *, decision_id: str, now: datetime, identity: VerifiedIdentity | None,
                 action: str, resource: str, live: LiveSnapshot | None, bundle: Bundle | None,
                 max_ttl: timedelta) -> None:
        self.decision_id, self.now, self.identity = decision_id, now, identity
        self.action, self.resource, self.live, self.bundle = action, resource, live, bundle
        self.action_name = action
        self.max_ttl = max_ttl
        self.principal = (cedar_uid(WORKLOAD_TYPE, identity.principal_id)
                          if identity is not None else None)

    def _make(self, decision: str, reasons: tuple[Reason, ...], code: str, explanation: str,
              errors: tuple[DecisionError, ...]) -> Decision:
        return Decision(
            decision_id=self.decision_id, decision=decision,  # type: ignore[arg-type]
            timestamp=self.now, principal=self.principal, action=self.action,
            resource=self.resource, reasons=reasons, reason_codes=(code,),
            explanation=explanation, errors=errors,
            version=self.bundle.version if self.bundle else None,
            live=self.live,
            valid_until=valid_until(self.now, self.identity, self.max_ttl),
            identity=self.identity)

    def error(self, error: DecisionError, others: tuple[DecisionError, ...] = ()) -> Decision:
        """Deny because something failed on the way to a decision."""
        errors = (error,) + tuple(e for e in others if e != error)
        return self._make("deny", (), error.code, explain_error(error), errors)

    def of(self, evaluation: Evaluation, bundle: Bundle) -> Decision:
        """The decision for a Cedar evaluation."""
        if evaluation.request_error is not None:
            return self.error(DecisionError(ReasonCode.REQUEST_INVALID, evaluation.request_error))
        errors = tuple(DecisionError(ReasonCode.ENGINE_ERROR, e.message, e.policy)
                       for e in evaluation.errors)
        if evaluation.errored_forbids:
            first = next(e for e in errors if e.policy in evaluation.errored_forbids)
            return self.error(DecisionError(
                ReasonCode.ENGINE_ERROR,
                f"forbid policy {first.policy} could not be evaluated, so it is treated as "
                f"applying: {first.message}", first.policy), errors)
        reasons = tuple(_reason(bundle, pid) for pid in evaluation.determining)
        if evaluation.allowed:
            return self._make("allow", reasons, ReasonCode.POLICY_PERMIT,
                              explain_allow(reasons), errors)
        forbids = tuple(r for r in reasons if r.effect == "forbid")
        if forbids:
            return self._make("deny", forbids, ReasonCode.POLICY_FORBID,
                              explain_forbid(forbids), errors)
        return self._make("deny", (), ReasonCode.POLICY_NO_PERMIT,
                          explain_no_permit(self.principal or "the caller", self.action_name,
                                            self.resource), errors)


def valid_until(now: datetime, identity: VerifiedIdentity | None, max_ttl: timedelta) -> datetime:
    """How long a PEP may cache this answer: never past the credential's expiry."""
    limit = now + max_ttl
    if identity is not None and identity.expires_at is not None:
        limit = min(limit, identity.expires_at)
    return max(limit, now)
