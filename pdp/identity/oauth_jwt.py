"""OAuth JWT access tokens (RFC 9068) and other JWTs of an explicitly configured issuer.

The issuer is chosen by an exact ``iss`` match (one trailing ``/`` tolerated
only when configured), and only that issuer's JWKS keys can verify the token.
An issuer configured for ``at+jwt`` accepts only tokens typed ``at+jwt`` with
the RFC 9068 claims; an issuer configured for plain ``jwt`` refuses them. So
an access token never passes as an ID token or a JWT-SVID, nor the reverse.
Ref: https://www.rfc-editor.org/rfc/rfc9068#section-4

Example::

    idp = OAuthIssuer(name="corp-idp", issuer="https://idp.example.com", keys=jwks.keys,
                      rules=JwtRules(audiences=frozenset({"pdp"})), token_type="at+jwt")
    verify_oauth_jwt(token, issuer=idp, now=now).principal_id
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pdp.identity.claims import (
    JwtRules,
    check_audience,
    check_lifetime,
    check_required,
    check_times,
    read_actors,
    read_groups,
    read_scopes,
    spiffe_id_if_claimed,
    string_claim,
    to_datetime,
)
from pdp.identity.errors import IdentityError, InvalidClaim, UntrustedIssuer
from pdp.identity.jose import (
    CompactJws,
    check_access_token_typ,
    check_header_members,
    check_jwt_typ,
    check_signature,
    parse_compact_jws,
    select_algorithm,
    select_key,
)
from pdp.identity.jwk import JwtKey
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import SpiffeId

RFC9068_REQUIRED_CLAIMS = frozenset({"iss", "exp", "aud", "sub", "client_id", "iat", "jti"})
# Claims that, when present, must be non-empty strings whatever the issuer's settings.
_STRING_CLAIMS = ("iss", "sub", "jti", "client_id")


@dataclass(frozen=True, slots=True)
class OAuthIssuer:
    """A trusted OAuth/OIDC issuer: its exact ``iss``, keys and claim rules.

    - ``token_type``: ``at+jwt`` (RFC 9068 access tokens) or ``jwt`` (``typ``
      absent, ``JWT`` or ``JOSE``).
    - ``required_claims``: must be present; ``at+jwt`` adds the RFC 9068 set.
    - ``principal_claim``: whose value names the workload when ``sub`` is not a SPIFFE ID.
    """

    name: str
    issuer: str
    keys: Mapping[str, JwtKey]
    rules: JwtRules
    token_type: Literal["jwt", "at+jwt"] = "jwt"
    required_claims: frozenset[str] = frozenset({"iss", "exp", "aud", "sub", "iat"})
    principal_claim: str = "sub"
    scopes_claim: str = "scope"
    groups_claim: str | None = None
    allow_trailing_slash: bool = False

    @property
    def all_required_claims(self) -> frozenset[str]:
        """The configured required claims, plus RFC 9068's for access tokens."""
        if self.token_type == "at+jwt":
            return self.required_claims | RFC9068_REQUIRED_CLAIMS
        return self.required_claims

    def matches(self, iss: object) -> bool:
        """True if ``iss`` names this issuer: byte for byte, or up to one trailing ``/``."""
        if not isinstance(iss, str):
            return False
        if iss == self.issuer:
            return True
        return self.allow_trailing_slash and _strip_slash(iss) == _strip_slash(self.issuer)


def verify_oauth_jwt(
    token: str | CompactJws, *, issuer: OAuthIssuer, now: datetime,
) -> VerifiedIdentity:
    """Verify a JWT of ``issuer`` at ``now`` and return who it identifies.

    Raises an :class:`~pdp.identity.errors.IdentityError` subclass, and nothing
    else, for every refused token.
    """
    jws = token if isinstance(token, CompactJws) else parse_compact_jws(token)
    check_header_members(jws.header)
    _check_typ(jws.header, issuer.token_type)
    _check_issuer(jws.payload, issuer)
    algorithm = select_algorithm(jws.header, issuer.rules.algorithms)
    key = select_key(jws.header, issuer.keys)
    check_signature(jws, algorithm, key)
    try:
        times = check_times(jws.payload, now, issuer.rules.leeway_s)
    except IdentityError as e:  # signed by the issuer: an expired token is still its subject's
        raise _proven(e, jws.payload, issuer) from e
    check_audience(jws.payload, issuer.rules)
    check_required(jws.payload, issuer.all_required_claims)
    _check_string_claims(jws.payload)
    flags = check_lifetime(times, issuer.rules, now)
    principal_id, spiffe_id = _principal(jws.payload, issuer.principal_claim)
    actors = read_actors(jws.payload, issuer.rules.max_act_depth)
    return VerifiedIdentity(
        principal_id=principal_id,
        kind="jwt",
        issuer=jws.payload["iss"],
        trust_domain=spiffe_id.trust_domain if spiffe_id else "",
        path=spiffe_id.path if spiffe_id else "",
        scopes=read_scopes(jws.payload, _scope_claims(issuer.scopes_claim)),
        groups=read_groups(jws.payload, issuer.groups_claim),
        issued_at=to_datetime(times.issued_at),
        not_before=to_datetime(times.not_before),
        expires_at=to_datetime(times.expires_at),
        jti=string_claim(jws.payload, "jti"),
        credential_sha256=jws.sha256,
        actor=actors.actor,
        chain_depth=actors.depth,
        actor_chain=actors.earlier,
        actor_issuer=actors.actor_issuer,
        flags=flags,
    )


def _check_typ(header: Mapping[str, Any], token_type: str) -> None:
    if token_type == "at+jwt":
        check_access_token_typ(header)  # a JWT-SVID-typed token never passes as one
    else:
        check_jwt_typ(header)


def _check_issuer(payload: Mapping[str, Any], issuer: OAuthIssuer) -> None:
    if not issuer.matches(payload.get("iss")):
        raise UntrustedIssuer(f"iss {payload.get('iss')!r} is not {issuer.issuer!r}")


def _check_string_claims(payload: Mapping[str, Any]) -> None:
    for name in _STRING_CLAIMS:
        string_claim(payload, name)


def _principal(payload: Mapping[str, Any], principal_claim: str) -> tuple[str, SpiffeId | None]:
    sub = payload.get("sub")
    spiffe_id = spiffe_id_if_claimed(sub) if isinstance(sub, str) else None
    if spiffe_id is not None:
        return str(spiffe_id), spiffe_id
    value = payload.get(principal_claim)
    if not isinstance(value, str) or not value:
        raise InvalidClaim(
            f"principal claim {principal_claim!r} must be a non-empty string",
            claim=principal_claim)
    spiffe_id = spiffe_id_if_claimed(value)
    return (str(spiffe_id), spiffe_id) if spiffe_id else (value, None)


def _proven(error: IdentityError, payload: Mapping[str, Any],
            issuer: OAuthIssuer) -> IdentityError:
    """``error``, naming the signed token's principal when its claims give one."""
    try:
        principal_id, _ = _principal(payload, issuer.principal_claim)
    except IdentityError:
        return error
    return error.proven(principal_id)


def _scope_claims(configured: str) -> tuple[str, ...]:
    return (configured,) if configured == "scp" else (configured, "scp")


def _strip_slash(value: str) -> str:
    return value[:-1] if value.endswith("/") else value


__all__ = ["OAuthIssuer", "RFC9068_REQUIRED_CLAIMS", "verify_oauth_jwt"]
