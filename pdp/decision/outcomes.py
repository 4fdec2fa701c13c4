"""``Outcomes``: the ``Decision`` for each way a request can end, and how long it holds.

Every path out of ``decide()`` (an error on the way, Cedar's answer, a refused
acting workload) builds its decision here, so the fields they share (id,
time, principal, policy version, live context, ``valid_until``) are filled
in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from context.model import LiveSnapshot
from pdp.decision.explain import explain_allow, explain_error, explain_forbid, explain_no_permit
from pdp.decision.model import Decision, DecisionError, Reason
from pdp.engine.actions import cedar_uid
from pdp.engine.bundle import Bundle
from pdp.engine.evaluate import Evaluation
from pdp.engine.grants import Grant
from pdp.engine.pdp_schema import WORKLOAD_TYPE
from pdp.engine.whynot import PolicyDiagnosis
from pdp.identity.model import VerifiedIdentity
from pdp.reasons import ReasonCode


def _reason(bundle: Bundle, policy_id: str, grants: Mapping[str, Grant]) -> Reason:
    grant = grants.get(policy_id)
    if grant is not None and grant.template in bundle.policies:
        template = bundle.policies[grant.template]
        return Reason(policy=policy_id, effect=template.effect,
                      message=f"{template.reason.rstrip('.')} (task grant {grant.id} for task "
                              f"{grant.task!r}, until {grant.expires_at.isoformat()})",
                      advice=template.advice)
    # A policy's reason is a pure function of the bundle's policies, built once per bundle:
    # a frozen dataclass costs more to build than a decision's other bookkeeping, and a
    # decision at 10,000 policies names three or four (bench/RESULTS.md, branch hflat).
    known: Reason | None = bundle.reasons.get(policy_id)
    if known is not None:
        return known
    info = bundle.policies.get(policy_id)
    if info is None:
        return Reason(policy=policy_id, effect="permit", message=f"policy {policy_id}")
    reason = Reason(policy=policy_id, effect=info.effect, message=info.reason,
                    advice=info.advice)
    bundle.reasons[policy_id] = reason  # a race builds an equal one: harmless
    return reason


class Outcomes:
    """Builds the ``Decision`` for each way a request can end, with the fields all share."""

    def __init__(self, *, decision_id: str, now: datetime, identity: VerifiedIdentity | None,
                 action: str, resource: str, live: LiveSnapshot | None, bundle: Bundle | None,
                 max_ttl: timedelta, principal_type: str = WORKLOAD_TYPE) -> None:
        self.decision_id, self.now, self.identity = decision_id, now, identity
        self.action, self.resource, self.live, self.bundle = action, resource, live, bundle
        self.action_name = action
        self.max_ttl = max_ttl
        self.grants: dict[str, Grant] = {}
        self.live_used = False  # the action declares context.live (set once resolved)
        # context.credential as Cedar saw it (``credential_facts(identity, now)``), if used.
        self.credential: dict[str, Any] | None = None
        self.principal = (cedar_uid(principal_type, identity.principal_id)
                          if identity is not None else None)

    def _make(self, decision: Literal["allow", "deny"], reasons: tuple[Reason, ...], code: str,
              explanation: str, errors: tuple[DecisionError, ...],
              diagnosis: tuple[PolicyDiagnosis, ...] = ()) -> Decision:
        return Decision(
            decision_id=self.decision_id, decision=decision,
            timestamp=self.now, principal=self.principal, action=self.action,
            resource=self.resource, reasons=reasons, reason_codes=(code,) + self._live_codes(),
            explanation=explanation + self._live_notes(), errors=errors,
            version=self.bundle.version if self.bundle else None,
            live=self.live,
            valid_until=self._valid_until(decision, reasons),
            identity=self.identity, diagnosis=diagnosis,
            grants=tuple(self.grants.values()), credential_context=self.credential)

    def _live_codes(self) -> tuple[str, ...]:
        # Live context this decision used was stale or unreachable: defaults were used.
        degraded = self.live_used and self.live is not None and self.live.degraded
        return (ReasonCode.CONTEXT_DEGRADED,) if degraded else ()

    def _live_notes(self) -> str:
        # What the live context says about itself (an automatic risk raise and its
        # evidence, degraded values), for the decisions it could affect.
        if not self.live_used or self.live is None or not self.live.notes:
            return ""
        return " Live context: " + "; ".join(self.live.notes) + "."

    def _valid_until(self, decision: str, reasons: tuple[Reason, ...]) -> datetime:
        limit = valid_until(self.now, self.identity, self.max_ttl,
                            self.live if self.live_used else None)
        if decision == "allow":
            # An allow that rests on a task grant ends with the grant.
            for reason in reasons:
                grant = self.grants.get(reason.policy)
                if grant is not None:
                    limit = min(limit, grant.expires_at)
        return limit

    def error(self, error: DecisionError, others: tuple[DecisionError, ...] = (),
              diagnosis: tuple[PolicyDiagnosis, ...] = ()) -> Decision:
        """Deny because something failed on the way to a decision."""
        errors = (error,) + tuple(e for e in others if e != error)
        return self._make("deny", (), error.code, explain_error(error), errors, diagnosis)

    def of(self, evaluation: Evaluation, bundle: Bundle,
           explained: tuple[PolicyDiagnosis, ...] | None = None) -> Decision:
        """The decision for a Cedar evaluation (``explained``: None when not diagnosed)."""
        diagnosis = explained or ()
        if evaluation.request_error is not None:
            return self.error(DecisionError(ReasonCode.REQUEST_INVALID, evaluation.request_error))
        errors = tuple(DecisionError(ReasonCode.ENGINE_ERROR, e.message, e.policy)
                       for e in evaluation.errors)
        if evaluation.errored_forbids:
            first = next(e for e in errors if e.policy in evaluation.errored_forbids)
            return self.error(DecisionError(
                ReasonCode.ENGINE_ERROR,
                f"forbid policy {first.policy} could not be evaluated, so it is treated as "
                f"applying: {first.message}", first.policy), errors, diagnosis)
        reasons = tuple(_reason(bundle, pid, self.grants) for pid in evaluation.determining)
        if evaluation.allowed:
            return self._make("allow", reasons, ReasonCode.POLICY_PERMIT,
                              explain_allow(reasons), errors, diagnosis)
        forbids = tuple(r for r in reasons if r.effect == "forbid")
        if forbids:
            return self._make("deny", forbids, ReasonCode.POLICY_FORBID,
                              explain_forbid(forbids, diagnosis), errors, diagnosis)
        return self._make("deny", (), ReasonCode.POLICY_NO_PERMIT,
                          explain_no_permit(self.principal or "the caller", self.action_name,
                                            self.resource, explained), errors, diagnosis)


def valid_until(now: datetime, identity: VerifiedIdentity | None, max_ttl: timedelta,
                live: LiveSnapshot | None = None) -> datetime:
    """How long a PEP may cache this answer: never past the credential's expiry, nor past
    the live context's next scheduled change (``live.valid_until``: an incident's end, a
    risk expiry or decay step, a business-hours boundary)."""
    limit = now + max_ttl
    if identity is not None and identity.expires_at is not None:
        limit = min(limit, identity.expires_at)
    if live is not None and live.valid_until is not None:
        limit = min(limit, live.valid_until)
    return max(limit, now)


__all__ = ["Outcomes", "valid_until"]
