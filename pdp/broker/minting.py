"""Minting: the issued credential as an RFC 9068 JWT access token, signed ES256.

Claims: ``iss`` (the broker), ``sub`` (the subject: its SPIFFE ID for workloads),
``aud`` (one audience), ``client_id`` (who asked: the actor, else the subject),
``scope`` (space-separated), ``iat``/``nbf``/``exp``, ``jti``, ``task``
(``{"id", "purpose"}``) and, when delegated, ``act`` (RFC 8693 §4.1: the current
actor, earlier ones nested). Header: ``alg`` ES256, ``typ`` ``at+jwt``, ``kid``.

Why an access token and not a JWT-SVID for SPIFFE subjects: a JWT-SVID is
signed by its trust domain's authority (SPIRE); a broker signing them would be a
second authority for the domain that every verifier would have to trust. An
``at+jwt`` from a named issuer can be verified by any standard library from the
broker's JWKS, and still names the workload by its SPIFFE ID in ``sub``.
Refs: https://www.rfc-editor.org/rfc/rfc9068#section-2, https://www.rfc-editor.org/rfc/rfc8693#section-4.1
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jwt

from pdp.broker.issuance import Plan
from pdp.broker.keys import ALGORITHM, BrokerKey

TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"


def issued_claims(plan: Plan, *, issuer: str, now: datetime) -> dict[str, Any]:
    """The claims of the credential ``plan`` describes, issued at ``now``."""
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer, "sub": plan.identity.principal_id, "aud": plan.audience,
        "client_id": plan.identity.actor or plan.identity.principal_id,
        "scope": " ".join(sorted(plan.scopes)),
        "iat": issued, "nbf": issued, "exp": issued + plan.lifetime_s, "jti": plan.jti,
        "task": {"id": plan.task.id, "purpose": plan.task.purpose},
    }
    if plan.act is not None:
        claims["act"] = plan.act
    return claims


def sign(claims: dict[str, Any], key: BrokerKey) -> str:
    """The compact JWS of ``claims`` signed by ``key`` (pyjwt)."""
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM,
                      headers={"kid": key.kid, "typ": "at+jwt"})


__all__ = ["TOKEN_TYPE_ACCESS", "TOKEN_TYPE_JWT", "issued_claims", "sign"]
