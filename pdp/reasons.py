"""The closed set of reason codes a decision can carry.

A reason code is a dotted string; the prefix names the layer that refused
(``identity``, ``request``, ``policy``, ``engine``, ``context``, ``broker``, ``audit``).
They are stable API: PEPs, dashboards and auditors match on them, so add new
codes here and never rename one.
"""

from enum import StrEnum


class ReasonCode(StrEnum):
    # A policy decided.
    POLICY_PERMIT = "policy.permit"
    POLICY_FORBID = "policy.forbid"
    POLICY_NO_PERMIT = "policy.no_permit"

    # The credential could not be verified (see pdp.identity.errors).
    IDENTITY_MISSING = "identity.missing"
    IDENTITY_MALFORMED = "identity.malformed"
    IDENTITY_HEADER = "identity.header"
    IDENTITY_ALGORITHM = "identity.algorithm"
    IDENTITY_TYPE = "identity.type"
    IDENTITY_UNTRUSTED_ISSUER = "identity.untrusted_issuer"
    IDENTITY_UNKNOWN_KEY = "identity.unknown_key"
    IDENTITY_BAD_SIGNATURE = "identity.bad_signature"
    IDENTITY_EXPIRED = "identity.expired"
    IDENTITY_NOT_YET_VALID = "identity.not_yet_valid"
    IDENTITY_AUDIENCE = "identity.audience"
    IDENTITY_CLAIMS = "identity.claims"
    IDENTITY_LIFETIME_EXCEEDED = "identity.lifetime_exceeded"
    IDENTITY_BAD_SPIFFE_ID = "identity.bad_spiffe_id"
    IDENTITY_CERTIFICATE = "identity.certificate"
    IDENTITY_REVOKED = "identity.revoked"
    # The trust bundle or JWKS that would verify it is past its maximum age (not refreshed).
    IDENTITY_TRUST_STALE = "identity.trust_stale"
    # The current revocations are unknown (their durable store could not be read
    # for longer than [context] max_age.revocations_s): no credential is accepted.
    IDENTITY_REVOCATION_UNKNOWN = "identity.revocation_unknown"
    # A verified caller of the decision endpoints that is not on `pep_allowlist`.
    IDENTITY_PEP_NOT_ALLOWED = "identity.pep_not_allowed"

    # The request could not be evaluated as sent.
    REQUEST_INVALID = "request.invalid"
    REQUEST_UNKNOWN_ACTION = "request.unknown_action"
    # A gateway request (Envoy, nginx) that no configured route maps to an action.
    REQUEST_NO_ROUTE = "request.no_route"

    # The engine failed, or a forbid policy could not be evaluated.
    ENGINE_ERROR = "engine.error"
    ENGINE_NO_BUNDLE = "engine.no_bundle"

    # Live context was stale or unreachable and defaults were used.
    CONTEXT_DEGRADED = "context.degraded"

    # The credential broker refused an exchange before or beside the policies
    # (pdp.broker.issuance): never wider, never longer.
    BROKER_UNKNOWN_AUDIENCE = "broker.unknown_audience"
    BROKER_SCOPE_WIDENED = "broker.scope_widened"
    BROKER_LIFETIME_EXCEEDED = "broker.lifetime_exceeded"
    BROKER_DELEGATION_DEPTH = "broker.delegation_depth"
    BROKER_FOREIGN_ACTOR = "broker.foreign_actor"
    BROKER_SELF_EXCHANGE = "broker.self_exchange"
    BROKER_TASK_CLOSED = "broker.task_closed"
    BROKER_TASK_FOREIGN = "broker.task_foreign"
    BROKER_INVALID_REQUEST = "broker.invalid_request"

    # The decision could not be recorded durably.
    AUDIT_UNAVAILABLE = "audit.unavailable"


__all__ = ["ReasonCode"]
