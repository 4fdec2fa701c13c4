"""The broker's own rules of issuance: never wider, never longer, checked before Cedar.

An exchange (RFC 8693) asks for a credential for one audience, some scopes and
a lifetime, for a task, possibly on behalf of a delegator. Before the bundle's
policies are asked (``Pdp::Action::"credential.issue"``), :func:`plan_issuance`
applies the rules no policy can loosen, and either returns the :class:`Plan` the
policies then decide on, or a :class:`Refusal` with its reason code:

- **audience**: one of the broker's audiences (else ``invalid_target``);
- **scope**: a subset of what the subject token carries (a broker-issued token
  always bounds it; a credential with no scope claim at all, such as a plain
  JWT-SVID, is an identity and leaves the bound to policy). Asking for more is
  refused (``invalid_scope``), never silently narrowed. Omitting ``scope`` asks
  for *at most* everything the subject token carries;
- **lifetime**: at most ``[broker] max_lifetime_s`` (15 min), the subject
  issuer's own maximum, and the remaining life of the subject and actor tokens.
  Asking for longer is refused; omitting it asks for *at most* that;
- **delegation**: the actor proves itself with its own credential (never a
  broker-issued one), belongs to the subject's trust domain, and the chain stays
  within ``max_delegation_depth``;
- **task**: a broker-issued subject token carries its task, which the new
  credential keeps; a different one is refused. Exchanging a broker token for
  the same audience with no actor only renews it, and is refused.

Pure functions over verified identities: no I/O, no clock but the ``now`` passed in.
Ref: https://www.rfc-editor.org/rfc/rfc8693#section-2.1
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pdp.identity.model import VerifiedIdentity
from pdp.reasons import ReasonCode

MAX_PURPOSE_CHARS = 512
MAX_TASK_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class TaskRef:
    """The task a credential is for: a stable id and a sentence saying what it does."""

    id: str
    purpose: str


@dataclass(frozen=True, slots=True)
class ExchangeAsk:
    """What the caller asked for, already parsed (``pdp.api.broker``)."""

    audience: str
    scopes: frozenset[str] | None  # None: at most what the subject token carries
    lifetime_s: int | None         # None: as long as allowed
    task_id: str | None
    purpose: str | None


@dataclass(frozen=True, slots=True)
class BrokerRules:
    """The limits from ``[broker]`` (``pdp.config.BrokerConfig``)."""

    issuer: str
    audiences: frozenset[str]
    max_lifetime_s: int
    max_lifetime_by_issuer: Mapping[str, int]
    max_delegation_depth: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What will be issued if the policies permit it."""

    identity: VerifiedIdentity      # the subject, acting through the new actor if any
    audience: str
    scopes: frozenset[str]
    lifetime_s: int
    task: TaskRef
    new_task: bool                  # the subject token carried no task: one is opened
    act: dict[str, Any] | None      # the `act` claim of the new credential
    jti: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """An exchange refused with an RFC 6749 error, a reason code and a sentence."""

    error: str           # invalid_request | invalid_target | invalid_scope | access_denied
    code: ReasonCode
    message: str


def plan_issuance(rules: BrokerRules, *, subject: VerifiedIdentity,
                  subject_claims: Mapping[str, Any], actor: VerifiedIdentity | None,
                  ask: ExchangeAsk, now: datetime) -> Plan | Refusal:
    """The credential the rules allow for ``ask``, or why none is (see the module doc)."""
    if ask.audience not in rules.audiences:
        return Refusal("invalid_target", ReasonCode.BROKER_UNKNOWN_AUDIENCE,
                       f"the broker issues no credentials for audience {ask.audience!r}")
    from_broker = subject.issuer == rules.issuer
    task = _task(ask, subject_claims if from_broker else None)
    if isinstance(task, Refusal):
        return task
    if from_broker and actor is None and _audience(subject_claims) == ask.audience:
        return Refusal("invalid_request", ReasonCode.BROKER_SELF_EXCHANGE,
                       "a broker credential cannot be exchanged for itself (same audience, no "
                       "actor): that would only renew it; ask for a new one with your own "
                       "credential")
    scopes = _scopes(ask.scopes, subject, bounded=from_broker or bool(subject.scopes))
    if isinstance(scopes, Refusal):
        return scopes
    delegated = _delegated(rules, subject, subject_claims, actor)
    if isinstance(delegated, Refusal):
        return delegated
    identity, act = delegated
    lifetime = _lifetime(rules, ask.lifetime_s, subject, actor, now)
    if isinstance(lifetime, Refusal):
        return lifetime
    return Plan(identity=identity, audience=ask.audience, scopes=scopes, lifetime_s=lifetime,
                task=task, new_task=not from_broker, act=act, jti=str(uuid.uuid4()))


def lifetime_cap(rules: BrokerRules, subject: VerifiedIdentity,
                 actor: VerifiedIdentity | None, now: datetime) -> int:
    """The longest lifetime allowed: the broker's and the subject issuer's maximum, and
    the remaining life of the subject and actor credentials (whole seconds, rounded down)."""
    caps = [rules.max_lifetime_s]
    issuer_cap = rules.max_lifetime_by_issuer.get(subject.issuer)
    if issuer_cap is None and subject.trust_domain:
        issuer_cap = rules.max_lifetime_by_issuer.get(f"spiffe://{subject.trust_domain}")
    if issuer_cap is not None:
        caps.append(issuer_cap)
    for who in (subject, actor):
        if who is not None and who.expires_at is not None:
            caps.append(int((who.expires_at - now).total_seconds()))
    return min(caps)


def _task(ask: ExchangeAsk, broker_claims: Mapping[str, Any] | None) -> TaskRef | Refusal:
    if broker_claims is not None:  # a broker credential: its task, and no other
        held = broker_claims.get("task")
        if not isinstance(held, dict) or not isinstance(held.get("id"), str):
            return Refusal("invalid_request", ReasonCode.BROKER_INVALID_REQUEST,
                           "the broker credential presented names no task")
        if ask.task_id is not None and ask.task_id != held["id"]:
            return Refusal("invalid_request", ReasonCode.BROKER_TASK_FOREIGN,
                           f"a credential of task {held['id']!r} cannot be exchanged for "
                           f"task {ask.task_id!r}")
        return TaskRef(held["id"], str(held.get("purpose", "")))
    if not ask.purpose or not ask.purpose.strip():
        return Refusal("invalid_request", ReasonCode.BROKER_INVALID_REQUEST,
                       "a new task needs a purpose (authorization_details[].purpose)")
    if len(ask.purpose) > MAX_PURPOSE_CHARS:
        return Refusal("invalid_request", ReasonCode.BROKER_INVALID_REQUEST,
                       f"the purpose is longer than {MAX_PURPOSE_CHARS} characters")
    task_id = ask.task_id or f"task-{uuid.uuid4()}"
    if not 1 <= len(task_id) <= MAX_TASK_ID_CHARS or not task_id.isprintable():
        return Refusal("invalid_request", ReasonCode.BROKER_INVALID_REQUEST,
                       f"a task id is 1-{MAX_TASK_ID_CHARS} printable characters")
    return TaskRef(task_id, ask.purpose.strip())


def _scopes(asked: frozenset[str] | None, subject: VerifiedIdentity,
            *, bounded: bool) -> frozenset[str] | Refusal:
    if asked is None:
        return subject.scopes
    wider = sorted(asked - subject.scopes) if bounded else []
    if wider:
        return Refusal("invalid_scope", ReasonCode.BROKER_SCOPE_WIDENED,
                       f"scope {' '.join(wider)} is not in the subject token's scope "
                       f"({' '.join(sorted(subject.scopes)) or 'none'}): a credential is "
                       "never wider than the one it is exchanged for")
    return asked


def _delegated(rules: BrokerRules, subject: VerifiedIdentity,
               subject_claims: Mapping[str, Any], actor: VerifiedIdentity | None,
               ) -> tuple[VerifiedIdentity, dict[str, Any] | None] | Refusal:
    """The identity the new credential will carry, and its ``act`` claim (RFC 8693 §4.1:
    the current actor on top, earlier ones nested below it)."""
    earlier = subject_claims.get("act")
    earlier = earlier if isinstance(earlier, dict) else None
    if actor is None:
        return subject, earlier
    if actor.issuer == rules.issuer:
        return Refusal("invalid_request", ReasonCode.BROKER_INVALID_REQUEST,
                       "the actor_token must be the actor's own credential, not one the "
                       "broker issued")
    if actor.actor is not None:
        return Refusal("invalid_request", ReasonCode.BROKER_INVALID_REQUEST,
                       "the actor_token is itself delegated: an actor acts as itself")
    if subject.trust_domain and actor.trust_domain != subject.trust_domain:
        return Refusal("invalid_request", ReasonCode.BROKER_FOREIGN_ACTOR,
                       f"the actor {actor.principal_id} is not of the subject's trust domain "
                       f"{subject.trust_domain!r}")
    depth = subject.chain_depth + 1
    if depth > rules.max_delegation_depth:
        return Refusal("invalid_request", ReasonCode.BROKER_DELEGATION_DEPTH,
                       f"the delegation chain would be {depth} deep; at most "
                       f"{rules.max_delegation_depth} is allowed")
    act: dict[str, Any] = {"sub": actor.principal_id}
    if not actor.trust_domain:  # not a SPIFFE ID: name its issuer (act.iss)
        act["iss"] = actor.issuer
    if earlier is not None:
        act["act"] = earlier
    chain = (subject.actor, *subject.actor_chain) if subject.actor else ()
    identity = replace(subject, actor=actor.principal_id, chain_depth=depth,
                       actor_chain=chain, actor_issuer=act.get("iss"))
    return identity, act


def _lifetime(rules: BrokerRules, asked: int | None, subject: VerifiedIdentity,
              actor: VerifiedIdentity | None, now: datetime) -> int | Refusal:
    cap = lifetime_cap(rules, subject, actor, now)
    if cap <= 0:
        return Refusal("invalid_request", ReasonCode.BROKER_LIFETIME_EXCEEDED,
                       "the subject or actor credential expires within the second")
    if asked is None:
        return cap
    if asked <= 0:
        return Refusal("invalid_request", ReasonCode.BROKER_INVALID_REQUEST,
                       "lifetime_s must be positive")
    if asked > cap:
        return Refusal("invalid_request", ReasonCode.BROKER_LIFETIME_EXCEEDED,
                       f"a lifetime of {asked} s was asked; at most {cap} s is allowed (the "
                       "broker's maximum and the remaining life of the credentials presented)")
    return asked


def _audience(claims: Mapping[str, Any]) -> str | None:
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else None


__all__ = ["BrokerRules", "ExchangeAsk", "Plan", "Refusal", "TaskRef", "lifetime_cap",
           "plan_issuance"]
