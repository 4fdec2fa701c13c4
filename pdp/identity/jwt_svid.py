"""JWT-SVIDs: a workload's SPIFFE ID in a signed, short-lived bearer token.

The ``sub`` claim is the workload's SPIFFE ID; its trust domain selects the
one bundle whose ``jwt-svid`` keys may have signed the token (a key of another
domain never counts, even with the same ``kid``). ``aud`` must name this PDP,
because a JWT-SVID is a bearer token: whoever it was sent to can replay it.
Ref: https://github.com/spiffe/spiffe/blob/main/standards/JWT-SVID.md

Example::

    identity = verify_jwt_svid(token, bundles={"example.org": bundle},
                               rules={"example.org": JwtRules(audiences=frozenset({"pdp"}))},
                               now=datetime.now(UTC))
    identity.principal_id   # "spiffe://example.org/ns/prod/sa/api"
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pdp.identity.claims import (
    JwtRules,
    check_audience,
    check_lifetime,
    check_times,
    read_actors,
    read_scopes,
    string_claim,
    to_datetime,
)
from pdp.identity.errors import BadSpiffeId, IdentityError, InvalidClaim, UntrustedIssuer
from pdp.identity.jose import (
    CompactJws,
    check_header_members,
    check_jwt_typ,
    check_signature,
    parse_compact_jws,
    select_algorithm,
    select_key,
)
from pdp.identity.model import VerifiedIdentity
from pdp.identity.spiffe_id import SpiffeId, parse_spiffe_id
from pdp.identity.trust_bundle import TrustBundle

SVID_SCOPE_CLAIMS = ("scope", "scp")


def verify_jwt_svid(
    token: str | CompactJws,
    *,
    bundles: Mapping[str, TrustBundle],
    rules: Mapping[str, JwtRules],
    now: datetime,
) -> VerifiedIdentity:
    """Verify a JWT-SVID at ``now`` and return who it identifies.

    ``bundles`` and ``rules`` are keyed by trust domain; a domain missing from
    either is untrusted. Raises an :class:`~pdp.identity.errors.IdentityError`
    subclass, and nothing else, for every refused token.
    """
    jws = token if isinstance(token, CompactJws) else parse_compact_jws(token)
    check_header_members(jws.header)
    check_jwt_typ(jws.header)  # an at+jwt access token is never a JWT-SVID
    spiffe_id = _subject(jws.payload)
    bundle, domain_rules = _trust_domain(spiffe_id, bundles, rules)
    algorithm = select_algorithm(jws.header, domain_rules.algorithms)
    key = select_key(jws.header, bundle.jwt_keys)
    check_signature(jws, algorithm, key)
    try:
        times = check_times(jws.payload, now, domain_rules.leeway_s)
    except IdentityError as e:  # signed by its domain: an expired SVID is still its own
        raise e.proven(str(spiffe_id)) from e
    check_audience(jws.payload, domain_rules)
    flags = check_lifetime(times, domain_rules, now)
    actors = read_actors(jws.payload, domain_rules.max_act_depth)
    return VerifiedIdentity(
        principal_id=str(spiffe_id),
        kind="jwt-svid",
        issuer=string_claim(jws.payload, "iss") or f"spiffe://{spiffe_id.trust_domain}",
        trust_domain=spiffe_id.trust_domain,
        path=spiffe_id.path,
        scopes=read_scopes(jws.payload, SVID_SCOPE_CLAIMS),
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


def _subject(payload: Mapping[str, Any]) -> SpiffeId:
    sub = payload.get("sub")
    if sub is None:
        raise InvalidClaim("JWT-SVID has no sub", claim="sub")
    if not isinstance(sub, str):
        raise InvalidClaim("sub must be a string", claim="sub")
    spiffe_id = parse_spiffe_id(sub)
    if spiffe_id.is_root:
        # The trust domain's own ID names no workload (X509-SVID spec §2 says the same).
        raise BadSpiffeId("JWT-SVID sub has no path", reason="no-path")
    return spiffe_id


def _trust_domain(
    spiffe_id: SpiffeId, bundles: Mapping[str, TrustBundle], rules: Mapping[str, JwtRules],
) -> tuple[TrustBundle, JwtRules]:
    bundle = bundles.get(spiffe_id.trust_domain)
    domain_rules = rules.get(spiffe_id.trust_domain)
    if bundle is None or domain_rules is None:
        raise UntrustedIssuer(
            f"trust domain {spiffe_id.trust_domain!r} is not trusted",
            reason="untrusted-trust-domain")
    return bundle, domain_rules


__all__ = ["verify_jwt_svid"]
