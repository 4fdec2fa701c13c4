"""``decide()``: one verified identity + one request -> one ``Decision``.

A plain function with no I/O: the bundle, the live snapshot and the time are
passed in, so the HTTP API, ``pdp check``, ``pdp test`` and replays all get
exactly the same answer for the same inputs. Errors come back as deny
decisions with reason codes, never as exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import uuid_utils

from context.model import LiveSnapshot
from pdp.decision.explain import explain_allow, explain_error, explain_forbid, explain_no_permit
from pdp.decision.model import AssertedSubject, Decision, DecisionError, Reason, ResourceRef
from pdp.engine.actions import ActionInfo, UnknownAction, cedar_uid
from pdp.engine.bundle import Bundle
from pdp.engine.evaluate import EntityInput, EvalRequest, Evaluation, evaluate
from pdp.engine.grants import Grant
from pdp.engine.pdp_schema import (
    CREDENTIAL_ATTR,
    GROUP_TYPE,
    LIVE_ATTR,
    WORKLOAD_TYPE,
    reserved_key,
)
from pdp.engine.whynot import (
    PolicyDiagnosis,
    RequestData,
    action_covers,
    diagnose,
    permit_candidates,
)
from pdp.identity.model import VerifiedIdentity
from pdp.reasons import ReasonCode

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
    explain: bool | None = None,
    principal: EntityInput | None = None,
    grants: Sequence[Grant] = (),
) -> Decision:
    """Evaluate ``action`` on ``resource`` for a verified ``identity`` at ``now``.

    ``explain``: diagnose which policies applied and why (``pdp.engine.whynot``).
    None (the default) diagnoses denies only, keeping allows on the fast path.
    ``principal``: the Cedar principal when it is not the identity's
    ``Pdp::Workload`` (an asserted subject of its own type, see ``asserted_principal``).
    ``grants``: task grants to link (pass those active at ``now``; expired ones are skipped).
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

    request = _eval_request(identity, action_info, resource, context, live, now, principal)
    def run(req: EvalRequest) -> Evaluation:
        return evaluate(bundle, req, grants=active)

    evaluation = run(request)
    wanted = explain if explain is not None else not evaluation.allowed
    diagnosis = _diagnose(bundle, request, evaluation) if wanted else None
    decision = outcome.of(evaluation, bundle, diagnosis)
    if decision.allowed and identity.actor is not None and principal is None:
        # RFC 8693 delegation: the acting workload must be allowed too (pdp.decision.delegation).
        from pdp.decision.delegation import check_actor
        decision = check_actor(decision, identity=identity, request=request, outcome=outcome,
                               bundle=bundle, run=run, explain=explain, max_ttl=max_ttl)
    if identity.flags:  # e.g. over the issuer's maximum lifetime, accepted and flagged
        from pdp.decision.delegation import with_credential_flags
        decision = with_credential_flags(decision, identity)
    return decision


def _eval_request(identity: VerifiedIdentity, action: ActionInfo, resource: ResourceRef,
                  context: Mapping[str, Any], live: LiveSnapshot, now: datetime,
                  principal: EntityInput | None = None) -> EvalRequest:
    return EvalRequest(
        principal=principal or principal_entity(identity),
        action=action,
        resource=EntityInput(type=resource.type, id=resource.id, attrs=resource.attrs,
                             parents=resource.parents),
        context=cedar_context(action, context, live, identity, now),
        pep_context=context,
    )


def diagnose_request(bundle: Bundle, *, identity: VerifiedIdentity, action: str,
                     resource: ResourceRef, context: Mapping[str, Any], live: LiveSnapshot,
                     now: datetime, grants: Sequence[Grant] = ()) -> tuple[PolicyDiagnosis, ...]:
    """Every static policy whose action scope covers the request, diagnosed by Cedar.

    For coverage (``pdp test --coverage``), not for decisions: it has no budget.
    """
    action_info = bundle.actions.resolve(action)
    request = _eval_request(identity, action_info, resource, context, live, now)
    active = [g for g in grants if g.active(now)]
    evaluation = evaluate(bundle, request, grants=active)
    if evaluation.entities is None:
        return ()
    ids = [p.id for p in bundle.policies.values()
           if not p.is_template and action_covers(p.node.action, bundle, action_info)]
    return tuple(diagnose(bundle, ids, principal=request.principal.uid, action=action_info,
                          resource=request.resource.uid, context=request.context,
                          entities=evaluation.entities, data=_request_data(bundle, request),
                          probes=bundle.probes))


def _request_data(bundle: Bundle, request: EvalRequest) -> RequestData:
    resource = request.resource.attrs
    if resource is None:
        resource = bundle.static_attrs.get((request.resource.type, request.resource.id))
    return RequestData(context=request.context, principal=request.principal.attrs or {},
                       resource=resource, static_attrs=bundle.static_attrs)


def _diagnose(bundle: Bundle, request: EvalRequest,
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
                     entities=evaluation.entities, data=data, probes=bundle.probes)
    # A permit whose scope does not cover the request explains nothing.
    return tuple(d for d in found if d.scope_matched)


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


ASSERTED_KIND: Final = "asserted"


def asserted_principal(subject: AssertedSubject) -> tuple[VerifiedIdentity, EntityInput]:
    """The identity and Cedar principal of a subject a trusted PEP asserts (no credential).

    A ``Pdp::Workload`` gets the attributes the PDP owns: trust domain and path
    from its SPIFFE ID, ``credential_kind`` and ``context.credential.kind``
    ``"asserted"``, ``issuer`` ``asserted-by:<pep>``; ``properties.scopes`` and
    ``properties.groups`` (lists of strings) fill scopes and groups. Any other
    type (``Photo::User``) is described by its ``properties``, which are checked
    against the schema like a PEP-described resource. The identity has no
    ``iat``/``exp``: ``context.credential`` reports it as old, never fresh.
    Raises ``ValueError`` for scopes or groups that are not lists of strings.
    """
    from pdp.identity.errors import BadSpiffeId
    from pdp.identity.spiffe_id import parse_spiffe_id

    props = dict(subject.properties or {})
    issuer = f"asserted-by:{subject.asserted_by}"
    if subject.type != WORKLOAD_TYPE:
        identity = VerifiedIdentity(principal_id=subject.id, kind=ASSERTED_KIND,
                                    issuer=issuer)
        return identity, EntityInput(
            type=subject.type, id=subject.id,
            attrs=props if subject.properties is not None else None, pep_described=True)
    trust_domain = path = ""
    try:
        spiffe = parse_spiffe_id(subject.id)
        trust_domain, path = spiffe.trust_domain, spiffe.path
    except BadSpiffeId:
        pass
    identity = VerifiedIdentity(
        principal_id=subject.id, kind=ASSERTED_KIND, issuer=issuer,
        trust_domain=trust_domain, path=path,
        scopes=_strings(props.get("scopes"), "scopes"),
        groups=_strings(props.get("groups"), "groups"))
    return identity, principal_entity(identity)


def _strings(value: Any, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"subject.properties.{name} must be a list of strings")
    return frozenset(value)


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
    """The PEP's context at the top level, plus ``live``/``credential`` where the action
    declares them."""
    out = dict(context)
    if action.declares_live:
        out[LIVE_ATTR] = live.to_cedar()
    if action.declares_credential:
        out[CREDENTIAL_ATTR] = credential_facts(identity, now)
    return out


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _reason(bundle: Bundle, policy_id: str, grants: Mapping[str, Grant]) -> Reason:
    grant = grants.get(policy_id)
    if grant is not None and grant.template in bundle.policies:
        template = bundle.policies[grant.template]
        return Reason(policy=policy_id, effect=template.effect,
                      message=f"{template.reason.rstrip('.')} (task grant {grant.id} for task "
                              f"{grant.task!r}, until {grant.expires_at.isoformat()})",
                      advice=template.advice)
    info = bundle.policies.get(policy_id)
    if info is None:
        return Reason(policy=policy_id, effect="permit", message=f"policy {policy_id}")
    return Reason(policy=policy_id, effect=info.effect, message=info.reason, advice=info.advice)


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
            grants=tuple(self.grants.values()))

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
