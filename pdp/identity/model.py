"""What a verified credential tells us about the workload that presented it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# "asserted": no credential, a subject a trusted PEP asserted (pdp.decision.decide).
CredentialKind = Literal["x509-svid", "jwt-svid", "jwt", "asserted"]


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A compact-serialized JWT as presented by the caller (JWT-SVID or OAuth JWT)."""

    token: str


@dataclass(frozen=True, slots=True)
class X509Chain:
    """A PEM chain: the leaf first, then any intermediates."""

    pem: str


Credential = BearerToken | X509Chain


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """The facts of a credential whose signature, issuer and lifetime checked out.

    ``principal_id`` becomes the Cedar principal ``Pdp::Workload::"<id>"``: the
    SPIFFE ID for SVIDs (and JWTs whose ``sub`` is a SPIFFE ID), otherwise the
    issuer's configured principal claim.
    """

    principal_id: str
    kind: CredentialKind
    issuer: str
    trust_domain: str = ""
    path: str = ""
    scopes: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    issued_at: datetime | None = None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    jti: str | None = None
    serial: str | None = None
    credential_sha256: str = ""
    # The current RFC 8693 actor (``act.sub``) and the depth of the chain.
    actor: str | None = None
    chain_depth: int = 0
    # Earlier actors, nearest first: recorded, never used to grant.
    actor_chain: tuple[str, ...] = field(default=())
    # ``act.iss`` of the current actor, when the token names one.
    actor_issuer: str | None = None
    # Accepted although over the issuer's maximum lifetime (configured to flag).
    flags: tuple[str, ...] = field(default=())


__all__ = ["BearerToken", "Credential", "CredentialKind", "VerifiedIdentity", "X509Chain"]
