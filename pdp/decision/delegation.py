"""Delegation (RFC 8693 ``act``): trust is verified at every hop, never inherited.

A token whose ``act`` claim names a current actor says "workload A acts for
subject S". The PDP answers allow only if the bundle's policies allow the
request **for S and for A**, each evaluated as its own ``Pdp::Workload``
principal against the same action, resource and context. A's entity carries
what the PDP knows of it: trust domain and path from its SPIFFE ID, the
token's credential kind, ``act.iss`` (else the token's issuer) as issuer, no
scopes or groups of its own (those belong to the token's subject); its groups
come only from ``entities.json``. Earlier actors (nested ``act``) are recorded
in the decision log, never evaluated and never used to grant.

When A is refused, the explanation names that hop; the reasons and reason
code are those of A's evaluation.
Ref: https://www.rfc-editor.org/rfc/rfc8693#section-4.1

Also here: :func:`with_credential_flags`, which makes a credential accepted
under a lenient rule (``lifetime_policy = "flag"``) visible in the decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from pdp.decision.cedar_request import principal_entity
from pdp.decision.diagnosis import diagnose_evaluation
from pdp.decision.model import Decision, DecisionError
from pdp.decision.outcomes import Outcomes, valid_until
from pdp.engine.bundle import Bundle
from pdp.engine.evaluate import EvalRequest, Evaluation
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import looks_like_spiffe_id, parse_spiffe_id
from pdp.reasons import ReasonCode


def actor_identity(identity: VerifiedIdentity) -> VerifiedIdentity:
    """The current actor of a delegated ``identity`` as a principal of its own."""
    actor = identity.actor or ""
    trust_domain = path = ""
    if looks_like_spiffe_id(actor):
        spiffe_id = parse_spiffe_id(actor)
        trust_domain, path = spiffe_id.trust_domain, spiffe_id.path
    return VerifiedIdentity(
        principal_id=actor, kind=identity.kind,
        issuer=identity.actor_issuer or identity.issuer,
        trust_domain=trust_domain, path=path,
        issued_at=identity.issued_at, not_before=identity.not_before,
        expires_at=identity.expires_at, jti=identity.jti, serial=identity.serial,
        credential_sha256=identity.credential_sha256)


def check_actor(
    subject_decision: Decision,
    *,
    identity: VerifiedIdentity,
    request: EvalRequest,
    outcome: Outcomes,
    bundle: Bundle,
    run: Callable[[EvalRequest], Evaluation],
    explain: bool | None,
    max_ttl: timedelta,
) -> Decision:
    """``subject_decision`` (an allow for the subject) if the current actor is allowed too;
    else a deny naming the actor. ``run`` evaluates a request as the subject's was."""
    actor = actor_identity(identity)
    actor_request = replace(request, principal=principal_entity(actor))
    evaluation = run(actor_request)
    wanted = explain if explain is not None else not evaluation.allowed
    diagnosis = diagnose_evaluation(bundle, actor_request, evaluation) if wanted else None
    hop = Outcomes(decision_id=subject_decision.decision_id, now=outcome.now, identity=actor,
                   action=outcome.action, resource=outcome.resource, live=outcome.live,
                   bundle=bundle, max_ttl=max_ttl)
    hop.action_name, hop.grants = outcome.action_name, outcome.grants
    actor_decision = hop.of(evaluation, bundle, diagnosis)
    errors = subject_decision.errors + tuple(
        e for e in actor_decision.errors if e not in subject_decision.errors)
    if actor_decision.allowed:
        seen = {r.policy for r in subject_decision.reasons}
        return replace(
            subject_decision,
            reasons=subject_decision.reasons + tuple(
                r for r in actor_decision.reasons if r.policy not in seen),
            explanation=(f"{subject_decision.explanation} The acting workload {actor.principal_id} "
                         f"is allowed too, by policy {actor_decision.reasons[0].policy}."),
            errors=errors,
            valid_until=min(subject_decision.valid_until, actor_decision.valid_until))
    return replace(
        subject_decision, decision="deny", reasons=actor_decision.reasons,
        reason_codes=actor_decision.reason_codes,
        explanation=(f"Denied: the acting workload {actor.principal_id} (acting for "
                     f"{identity.principal_id}) is not permitted. {actor_decision.explanation}"),
        errors=errors, diagnosis=actor_decision.diagnosis,
        valid_until=valid_until(outcome.now, identity, max_ttl))


_FLAG_WARNINGS = {
    "lifetime_exceeded": (ReasonCode.IDENTITY_LIFETIME_EXCEEDED,
                          "accepted and flagged: the credential lives longer than its issuer's "
                          "maximum lifetime (lifetime_policy = flag)"),
}


def with_credential_flags(decision: Decision, identity: VerifiedIdentity) -> Decision:
    """``decision`` with one warning in ``errors`` per flag the verifier set on the
    credential (the decision itself is unchanged; the record keeps the flags too)."""
    warnings = tuple(DecisionError(*_FLAG_WARNINGS.get(f, (ReasonCode.IDENTITY_CLAIMS,
                                                           f"credential flagged: {f}")))
                     for f in identity.flags)
    return replace(decision, errors=decision.errors + tuple(
        w for w in warnings if w not in decision.errors))


__all__ = ["actor_identity", "check_actor", "with_credential_flags"]
