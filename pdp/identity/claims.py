"""Claim checks shared by JWT-SVIDs and OAuth JWTs, run after the signature verified.

Each ``check_*`` is short and raises one error class, like pyjwt's
``_validate_*``; unlike pyjwt, the numeric claims are type-checked (pyjwt
accepts ``"exp": "9999999999"``) and the time is passed in, never read from the
clock, so tests and replays decide with the same ``now``.
Refs: https://www.rfc-editor.org/rfc/rfc7519#section-4.1,
https://www.rfc-editor.org/rfc/rfc8693#section-4.1 (``act``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pdp.identity.algorithms import ALGORITHMS, allowed_algorithms
from pdp.identity.errors import (
    Expired,
    InvalidClaim,
    LifetimeExceeded,
    NotYetValid,
    WrongAudience,
)
from pdp.identity.spiffe_id import SpiffeId, looks_like_spiffe_id, parse_spiffe_id

MAX_LEEWAY_S = 60
MAX_ACT_DEPTH = 3
"""Most ``act`` levels accepted: the current actor plus two earlier ones."""
MAX_NUMERIC_DATE = 253402300799
"""9999-12-31T23:59:59Z: later values cannot be datetimes."""
LIFETIME_EXCEEDED_FLAG = "lifetime_exceeded"


@dataclass(frozen=True, slots=True)
class JwtRules:
    """What a JWT must satisfy beyond its signature; the defaults are the safe ones.

    - ``audiences``: ``aud`` must name one of these (this PDP's audience).
    - ``algorithms``: the ``alg`` allow-list (asymmetric only; default all nine).
    - ``allow_multiple_audiences``: default ``False``; a token for several
      audiences can be replayed by any of them.
    - ``leeway_s``: clock skew tolerated on ``exp``/``nbf``/``iat``, 0..60 s (default 30).
    - ``max_lifetime_s``: longest ``exp - iat`` (default one hour).
    - ``lifetime_policy``: ``deny`` (default) or ``flag`` a token over that lifetime.
    - ``max_act_depth``: most RFC 8693 ``act`` levels (default 3).
    """

    audiences: frozenset[str]
    algorithms: frozenset[str] = frozenset(ALGORITHMS)
    allow_multiple_audiences: bool = False
    leeway_s: int = 30
    max_lifetime_s: int = 3600
    lifetime_policy: Literal["deny", "flag"] = "deny"
    max_act_depth: int = MAX_ACT_DEPTH

    def __post_init__(self) -> None:
        if not self.audiences:
            raise ValueError("at least one audience is required")
        if not 0 <= self.leeway_s <= MAX_LEEWAY_S:
            raise ValueError(f"leeway must be 0..{MAX_LEEWAY_S} seconds")
        if not 1 <= self.max_act_depth <= 10:
            raise ValueError("max_act_depth must be 1..10")
        allowed_algorithms(self.algorithms)


@dataclass(frozen=True, slots=True)
class TokenTimes:
    """The token's NumericDate claims, in seconds since the epoch."""

    expires_at: int
    issued_at: int | None = None
    not_before: int | None = None


@dataclass(frozen=True, slots=True)
class ActorChain:
    """RFC 8693 delegation: ``actor`` acts now (vouched for by ``actor_issuer``,
    its ``act.iss``, if given); ``earlier`` are prior actors, nearest first."""

    actor: str | None = None
    depth: int = 0
    earlier: tuple[str, ...] = ()
    actor_issuer: str | None = None


def check_times(payload: Mapping[str, Any], now: datetime, leeway_s: int) -> TokenTimes:
    """``exp`` is required; ``exp``, ``nbf`` and ``iat`` must be integers; check them at ``now``.

    Expired when ``now >= exp + leeway`` (RFC 7519 §4.1.4: "on or after");
    not yet valid when ``nbf`` or ``iat`` lies more than ``leeway`` ahead of ``now``.
    """
    expires_at = _numeric_date(payload, "exp")
    if expires_at is None:
        raise InvalidClaim("missing required claim 'exp'", claim="exp")
    times = TokenTimes(expires_at, _numeric_date(payload, "iat"), _numeric_date(payload, "nbf"))
    t = now.timestamp()
    if t >= times.expires_at + leeway_s:
        raise Expired("token has expired")
    if times.not_before is not None and times.not_before > t + leeway_s:
        raise NotYetValid("token is not valid yet (nbf)")
    if times.issued_at is not None and times.issued_at > t + leeway_s:
        raise NotYetValid("token was issued in the future (iat)")
    return times


def check_audience(payload: Mapping[str, Any], rules: JwtRules) -> None:
    """``aud`` must be present and name one of ``rules.audiences``; by default only one audience.

    Without this check a token minted for any other service (which then holds
    it) would be accepted here: the audience is what binds a bearer token to us.
    """
    aud = payload.get("aud")
    if aud is None:
        raise WrongAudience("token has no aud")
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidClaim("aud must be a string or an array of strings", claim="aud")
    audiences = set(values)
    if not audiences:
        raise WrongAudience("aud is empty")
    if len(audiences) > 1 and not rules.allow_multiple_audiences:
        raise WrongAudience("token names more than one audience")
    if not audiences & rules.audiences:
        raise WrongAudience("token is not meant for this PDP (aud)")


def check_required(payload: Mapping[str, Any], names: tuple[str, ...] | frozenset[str]) -> None:
    """Every claim in ``names`` is present (a JSON ``null`` counts as missing)."""
    for name in sorted(names):
        if payload.get(name) is None:
            raise InvalidClaim(f"missing required claim {name!r}", claim=name)


def check_lifetime(times: TokenTimes, rules: JwtRules, now: datetime) -> tuple[str, ...]:
    """Refuse (or flag) a token meant to live longer than ``rules.max_lifetime_s``.

    The lifetime is ``exp - iat``. Without ``iat`` (optional in JWT-SVIDs) it is
    unknown, so its lower bound ``exp - now`` is measured instead: a token whose
    remaining life alone exceeds the maximum (plus leeway) is certainly too long.
    Returns the flags to record: ``("lifetime_exceeded",)`` under policy ``flag``.
    """
    if times.issued_at is not None:
        exceeded = times.expires_at - times.issued_at > rules.max_lifetime_s
    else:
        exceeded = times.expires_at - now.timestamp() > rules.max_lifetime_s + rules.leeway_s
    if not exceeded:
        return ()
    if rules.lifetime_policy == "flag":
        return (LIFETIME_EXCEEDED_FLAG,)
    raise LifetimeExceeded(f"token lifetime exceeds {rules.max_lifetime_s} s")


def string_claim(payload: Mapping[str, Any], name: str) -> str | None:
    """The claim's value if it is a non-empty string, ``None`` if absent; otherwise refuse."""
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidClaim(f"{name!r} must be a non-empty string", claim=name)
    return value


def spiffe_id_if_claimed(value: str) -> SpiffeId | None:
    """Parse ``value`` strictly if it claims to be a SPIFFE ID; ``None`` if it does not.

    A value starting with ``spiffe:`` that does not parse raises ``BadSpiffeId``:
    it is never demoted to an opaque name.
    """
    if not looks_like_spiffe_id(value):
        return None
    return parse_spiffe_id(value)


def read_scopes(payload: Mapping[str, Any], names: tuple[str, ...]) -> frozenset[str]:
    """Scopes from the claims ``names``: a space-separated string (RFC 8693 ``scope``)
    or an array of strings (``scp``)."""
    scopes: set[str] = set()
    for name in names:
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(s for s in value.split(" ") if s)
        elif isinstance(value, list) and all(isinstance(s, str) and s for s in value):
            scopes.update(value)
        else:
            raise InvalidClaim(f"{name!r} must be a string or an array of strings", claim=name)
    return frozenset(scopes)


def read_groups(payload: Mapping[str, Any], name: str | None) -> frozenset[str]:
    """Groups from the claim ``name`` (an array of non-empty strings), if configured."""
    if name is None or payload.get(name) is None:
        return frozenset()
    value = payload[name]
    if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
        raise InvalidClaim(f"{name!r} must be an array of strings", claim=name)
    return frozenset(value)


def read_actors(payload: Mapping[str, Any], max_depth: int = MAX_ACT_DEPTH) -> ActorChain:
    """The RFC 8693 ``act`` chain: ``act.sub`` is the current actor, nested ``act`` earlier ones.

    Each level is an object with a non-empty string ``sub`` (a SPIFFE-looking
    one must parse) and an optional string ``iss``. More than ``max_depth``
    (default :data:`MAX_ACT_DEPTH`) levels is refused: the chain is recorded in
    every decision and must stay small.
    """
    subjects: list[str] = []
    issuers: list[str | None] = []
    act = payload.get("act")
    while act is not None:
        if len(subjects) == max_depth:
            raise InvalidClaim("act chain too deep", claim="act")
        if not isinstance(act, dict):
            raise InvalidClaim("act must be an object", claim="act")
        subjects.append(_actor_subject(act))
        issuers.append(act.get("iss"))
        act = act.get("act")
    if not subjects:
        return ActorChain()
    return ActorChain(actor=subjects[0], depth=len(subjects), earlier=tuple(subjects[1:]),
                      actor_issuer=issuers[0])


def to_datetime(seconds: int | None) -> datetime | None:
    """A NumericDate as an aware UTC datetime."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _actor_subject(act: Mapping[str, Any]) -> str:
    sub = act.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidClaim("act.sub must be a non-empty string", claim="act")
    spiffe_id_if_claimed(sub)
    iss = act.get("iss")
    if iss is not None and not (isinstance(iss, str) and iss):
        raise InvalidClaim("act.iss must be a non-empty string", claim="act")
    return sub


def _numeric_date(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    # bool is an int subclass, and pyjwt would accept a numeric string: refuse both.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidClaim(f"{name!r} must be an integer NumericDate", claim=name)
    if not 0 <= value <= MAX_NUMERIC_DATE:
        raise InvalidClaim(f"{name!r} is out of range", claim=name)
    return value


__all__ = [
    "ActorChain", "JwtRules", "LIFETIME_EXCEEDED_FLAG", "MAX_ACT_DEPTH", "TokenTimes",
    "check_audience", "check_lifetime", "check_required", "check_times", "read_actors",
    "read_groups", "read_scopes", "spiffe_id_if_claimed", "string_claim", "to_datetime",
]
