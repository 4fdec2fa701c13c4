"""Why a credential was refused.

One class per failure, as in pyjwt; each names its reason code, so the
decision path turns an exception into a deny with that code in one place::

    IdentityError
     ├── MissingCredential         identity.missing
     ├── MalformedCredential       identity.malformed
     ├── ForbiddenHeader           identity.header
     ├── DisallowedAlgorithm       identity.algorithm
     ├── WrongTokenType            identity.type
     ├── UntrustedIssuer           identity.untrusted_issuer
     ├── UnknownKey                identity.unknown_key
     ├── BadSignature              identity.bad_signature
     ├── Expired                   identity.expired
     ├── NotYetValid               identity.not_yet_valid
     ├── WrongAudience             identity.audience
     ├── InvalidClaim              identity.claims
     ├── LifetimeExceeded          identity.lifetime_exceeded
     ├── BadSpiffeId               identity.bad_spiffe_id
     ├── InvalidCertificate        identity.certificate
     ├── Revoked                   identity.revoked
     ├── TrustStale                identity.trust_stale
     └── RevocationUnknown         identity.revocation_unknown

Who a refused credential belongs to is known only when its signature (or its
certificate path) checked out before the refusal: an expired, not-yet-valid or
revoked credential of a trusted issuer. The verifier then sets
``proven_principal``; for every other refusal it stays None, and nothing may be
attributed to the name the credential merely claims (a forger can write any
``sub`` or URI SAN).
"""

from __future__ import annotations

from pdp.reasons import ReasonCode


class IdentityError(Exception):
    """A credential failed verification. ``code`` is the decision's reason code.

    ``reason`` optionally names the exact rule that failed, as a short kebab-case
    string (``"bad-scheme"``, ``"leaf-ca-true"``, ``"outside-validity-period"``):
    finer than ``code``, stable enough for tests and audit records.
    """

    code: ReasonCode = ReasonCode.IDENTITY_MALFORMED

    # The principal a trusted signature or certificate path proved this credential to
    # be, when it was refused afterwards (expired, revoked); None: nobody is proven.
    proven_principal: str | None = None

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def proven(self, principal_id: str) -> IdentityError:
        """This error, noting that the credential was proven to be ``principal_id``'s.

        Call it only after the signature or the certificate path verified.
        """
        self.proven_principal = principal_id
        return self


class MissingCredential(IdentityError):
    """No credential was presented."""

    code = ReasonCode.IDENTITY_MISSING


class MalformedCredential(IdentityError):
    """The credential cannot be parsed (not a compact JWT, bad base64, bad JSON, not PEM)."""

    code = ReasonCode.IDENTITY_MALFORMED


class ForbiddenHeader(IdentityError):
    """The JOSE header carries a member we refuse (``jku``, ``x5u``, ``jwk``, ``crit``, ...)."""

    code = ReasonCode.IDENTITY_HEADER


class DisallowedAlgorithm(IdentityError):
    """``alg`` is not in the configured allow-list (never HS*, never ``none``)."""

    code = ReasonCode.IDENTITY_ALGORITHM


class WrongTokenType(IdentityError):
    """``typ`` does not match the token kind the issuer is trusted for."""

    code = ReasonCode.IDENTITY_TYPE


class UntrustedIssuer(IdentityError):
    """``iss`` (or the SPIFFE trust domain) is not configured as trusted."""

    code = ReasonCode.IDENTITY_UNTRUSTED_ISSUER


class UnknownKey(IdentityError):
    """No trusted key carries the token's ``kid``."""

    code = ReasonCode.IDENTITY_UNKNOWN_KEY


class BadSignature(IdentityError):
    """The signature does not verify with the trusted key."""

    code = ReasonCode.IDENTITY_BAD_SIGNATURE


class Expired(IdentityError):
    """``exp`` (or the certificate's notAfter) has passed."""

    code = ReasonCode.IDENTITY_EXPIRED


class NotYetValid(IdentityError):
    """``nbf``/``iat`` (or notBefore) lies in the future."""

    code = ReasonCode.IDENTITY_NOT_YET_VALID


class WrongAudience(IdentityError):
    """``aud`` is missing, does not name this PDP, or names more than one audience."""

    code = ReasonCode.IDENTITY_AUDIENCE


class InvalidClaim(IdentityError):
    """A required claim is missing or has the wrong type. ``claim`` names it."""

    code = ReasonCode.IDENTITY_CLAIMS

    def __init__(self, message: str, claim: str | None = None, *,
                 reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.claim = claim


class LifetimeExceeded(IdentityError):
    """``exp - iat`` is longer than the issuer's configured maximum lifetime."""

    code = ReasonCode.IDENTITY_LIFETIME_EXCEEDED


class BadSpiffeId(IdentityError):
    """A SPIFFE ID breaks the SPIFFE-ID spec."""

    code = ReasonCode.IDENTITY_BAD_SPIFFE_ID


class InvalidCertificate(IdentityError):
    """An X.509-SVID chain failed path validation or the SPIFFE leaf rules."""

    code = ReasonCode.IDENTITY_CERTIFICATE


class Revoked(IdentityError):
    """The credential or its subject is on a live deny-list."""

    code = ReasonCode.IDENTITY_REVOKED


class TrustStale(IdentityError):
    """The trust bundle or JWKS that would verify the credential is older than its
    configured maximum age: its source could not be refreshed for too long."""

    code = ReasonCode.IDENTITY_TRUST_STALE


class RevocationUnknown(IdentityError):
    """The current revocations cannot be known, so no credential is accepted (fail closed)."""

    code = ReasonCode.IDENTITY_REVOCATION_UNKNOWN


__all__ = [
    "BadSignature", "BadSpiffeId", "DisallowedAlgorithm", "Expired", "ForbiddenHeader",
    "IdentityError", "InvalidCertificate", "InvalidClaim", "LifetimeExceeded",
    "MalformedCredential", "MissingCredential", "NotYetValid", "RevocationUnknown", "Revoked",
    "TrustStale",
    "UnknownKey", "UntrustedIssuer", "WrongAudience", "WrongTokenType",
]
