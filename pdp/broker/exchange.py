"""The credential broker: verify, apply the rules, let Cedar decide, record, mint.

One exchange, top to bottom (:meth:`Broker.exchange`):

1. verify the subject token (and the actor token) as every credential is
   verified (``DecisionService.verify``: signature, issuer, lifetime, revocations);
2. apply the rules no policy can loosen (:func:`pdp.broker.issuance.plan_issuance`);
3. check the task: open, and the subject's own;
4. ask the bundle: ``Pdp::Action::"credential.issue"`` on ``Pdp::Audience::"<aud>"``
   with the scopes, lifetime, task and actor in the context, through the same
   ``DecisionService`` as every door, so the decision is in the hash-chained log
   before anything is issued. Refusals in steps 1-3 are recorded as refused
   decisions with their reason code, so *every* exchange has a record;
5. commit the credential's facts to its task (:mod:`pdp.broker.tasks`), at the same
   time as the decision's record (both name the new ``jti``), then sign.

The log and the registry keep the facts (subject token SHA-256, requested and
granted scope and lifetime, task, actor chain, the new ``jti``), never a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import jwt

from context.clock import Clock
from context.store import ContextUnavailable
from pdp.broker.issuance import BrokerRules, ExchangeAsk, Plan, Refusal, plan_issuance
from pdp.broker.keys import BrokerKeyring
from pdp.broker.minting import issued_claims, sign
from pdp.broker.tasks import IssuedCredential, Task, TaskClosed, TaskRegistry
from pdp.decision.model import AuthorizeInput, Decision, DecisionError, ResourceRef
from pdp.decision.service import DecisionService
from pdp.engine.actions import cedar_uid
from pdp.engine.pdp_schema import ADMIN_ACTION_TYPE, AUDIENCE_TYPE, ISSUE_ACTION
from pdp.identity.errors import IdentityError
from pdp.identity.model import Credential, VerifiedIdentity
from pdp.reasons import ReasonCode

ISSUE_ACTION_UID = cedar_uid(ADMIN_ACTION_TYPE, ISSUE_ACTION)
PEP_NAME = "broker"
MAX_LIFETIME_ANNOTATION = "max_lifetime_s"
"""On a permit of ``credential.issue``: the longest credential it lets the broker issue."""


@dataclass(frozen=True, slots=True)
class Issued:
    """An issued credential and the decision that allowed it."""

    token: str
    claims: dict[str, Any]
    decision: Decision


@dataclass(frozen=True, slots=True)
class Refused:
    """A refused exchange: the RFC 6749 error, and the recorded decision saying why."""

    error: str
    decision: Decision

    @property
    def code(self) -> str:
        return str(self.decision.reason_codes[0]) if self.decision.reason_codes else ""


@dataclass
class Broker:
    rules: BrokerRules
    keyring: BrokerKeyring
    tasks: TaskRegistry
    service: DecisionService
    clock: Clock

    async def exchange(self, *, subject: Credential, actor: Credential | None,
                       ask: ExchangeAsk, request_id: str | None = None) -> Issued | Refused:
        now = self.clock.now()
        context = _asked_context(ask)
        base = AuthorizeInput(credential=subject, action=ISSUE_ACTION_UID,
                              resource=ResourceRef(AUDIENCE_TYPE, ask.audience),
                              context=context, request_id=request_id, pep=PEP_NAME)
        try:
            subject_identity = self.service.verify(subject, now)
        except IdentityError as e:
            return await self._refuse(base, "invalid_request", e.code, f"subject_token: {e}")
        actor_identity: VerifiedIdentity | None = None
        if actor is not None:
            try:
                actor_identity = self.service.verify(actor, now)
            except IdentityError as e:
                return await self._refuse(base, "invalid_request", e.code,
                                          f"actor_token: {e}", subject_identity)
        plan = plan_issuance(self.rules, subject=subject_identity,
                             subject_claims=_claims(subject), actor=actor_identity,
                             ask=ask, now=now)
        if isinstance(plan, Refusal):
            return await self._refuse(base, plan.error, plan.code, plan.message,
                                      subject_identity)
        base = replace(base, verified=plan.identity, context=_planned_context(ask, plan))
        task = self.tasks.get(plan.task.id)
        if task is not None and not task.live:
            return await self._refuse(base, "invalid_request", ReasonCode.BROKER_TASK_CLOSED,
                                      f"task {task.id} was completed at {task.completed_at}",
                                      plan.identity)
        if task is not None and plan.new_task and task.owner != subject_identity.principal_id:
            return await self._refuse(base, "invalid_request", ReasonCode.BROKER_TASK_FOREIGN,
                                      f"task {task.id} belongs to {task.owner}", plan.identity)
        preview = self.service.preview(base)
        recorded: Decision | None = None
        if not preview.allowed:  # record the refusal; nothing to register
            recorded = await self.service.authorize(base)
            if not recorded.allowed:
                return _refused(recorded)
            preview = recorded  # the policies changed in between: go by the recorded answer
        sized = self._sized_by_policy(preview, plan, asked=ask.lifetime_s)
        if isinstance(sized, Refusal):
            return await self._refuse(base, sized.error, sized.code, sized.message,
                                      plan.identity)
        if recorded is not None and sized.lifetime_s != plan.lifetime_s:
            return await self._refuse(base, "invalid_request",
                                      ReasonCode.BROKER_LIFETIME_EXCEEDED,
                                      "the policies changed during the exchange and now allow "
                                      f"at most {sized.lifetime_s} s: ask again", plan.identity)
        plan, base = sized, replace(base, context=_planned_context(ask, sized))
        claims = issued_claims(plan, issuer=self.rules.issuer, now=now)
        credential = _issued_credential(plan, claims)
        # The recorded decision and the credential's row are two durable commits: made at
        # once (the row names the jti the record names), and undone if the decision denies.
        registering = asyncio.ensure_future(asyncio.to_thread(
            self._register, plan, credential, subject_identity))
        decision = recorded or await self.service.authorize(base)
        try:
            await registering
        except TaskClosed as e:
            return await self._refuse(base, "invalid_request", ReasonCode.BROKER_TASK_CLOSED,
                                      str(e), plan.identity)
        except ContextUnavailable as e:
            return await self._refuse(base, "temporarily_unavailable",
                                      ReasonCode.AUDIT_UNAVAILABLE,
                                      f"the task registry could not record the credential: {e}",
                                      plan.identity)
        if not decision.allowed:  # the log refused it, or a reload came in between
            await asyncio.to_thread(self.tasks.forget, credential, opened=plan.new_task)
            return _refused(decision)
        return Issued(sign(claims, self.keyring.current), claims, decision)

    def _sized_by_policy(self, preview: Decision, plan: Plan,
                         *, asked: int | None) -> Plan | Refusal:
        """``plan`` with its lifetime cut to what the permitting policies allow
        (``@max_lifetime_s("600")`` on a permit), when the caller did not ask for one;
        a refusal when it asked for more. Read from an unrecorded ``preview`` of the
        decision, so that the recorded decision is made on the lifetime actually issued."""
        if not preview.allowed:
            return plan
        bundle = self.service.bundles.current
        caps = [(_max_lifetime(bundle.policies[r.policy].annotations), r.policy)
                for r in preview.reasons
                if r.effect == "permit" and bundle is not None and r.policy in bundle.policies]
        limits = [(cap, policy) for cap, policy in caps if cap is not None]
        if not limits:
            return plan
        cap, policy = min(limits)
        if plan.lifetime_s <= cap:
            return plan
        if asked is not None:
            return Refusal("invalid_request", ReasonCode.BROKER_LIFETIME_EXCEEDED,
                           f"a lifetime of {asked} s was asked; policy {policy} allows at most "
                           f"{cap} s")
        return replace(plan, lifetime_s=cap)

    def _register(self, plan: Plan, credential: IssuedCredential,
                  subject: VerifiedIdentity) -> None:
        opening = (Task(id=plan.task.id, purpose=plan.task.purpose,
                        owner=subject.principal_id, opened_at=credential.issued_at)
                   if plan.new_task else None)
        self.tasks.record(credential, opening=opening)

    async def _refuse(self, request: AuthorizeInput, error: str, code: str, message: str,
                      identity: VerifiedIdentity | None = None) -> Refused:
        decision = await self.service.authorize(replace(
            request, verified=identity, refused=DecisionError(ReasonCode(code), message)))
        return Refused(error, decision)


def _refused(decision: Decision) -> Refused:
    failed = ReasonCode.AUDIT_UNAVAILABLE in decision.reason_codes
    return Refused("temporarily_unavailable" if failed else "access_denied", decision)


def _issued_credential(plan: Plan, claims: dict[str, Any]) -> IssuedCredential:
    identity = plan.identity
    return IssuedCredential(
        task_id=plan.task.id, jti=plan.jti, subject=identity.principal_id,
        actor_chain=((identity.actor, *identity.actor_chain) if identity.actor else ()),
        audience=plan.audience, scopes=tuple(sorted(plan.scopes)),
        issued_at=_iso(claims["iat"]), expires_at=_iso(claims["exp"]))


def _max_lifetime(annotations: Mapping[str, str]) -> int | None:
    """A permit's ``@max_lifetime_s`` in seconds; a malformed one allows nothing (0)."""
    raw = annotations.get(MAX_LIFETIME_ANNOTATION)
    if raw is None:
        return None
    return int(raw) if raw.strip().isdigit() else 0


def _claims(credential: Credential) -> dict[str, Any]:
    """The claims of a token that has just verified (read again only for ``act`` and
    ``task``); an X.509 chain has none."""
    token = getattr(credential, "token", None)
    if token is None:
        return {}
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _asked_context(ask: ExchangeAsk) -> dict[str, Any]:
    """What was asked, recorded even when the exchange is refused before the policies."""
    return {"scopes": sorted(ask.scopes or ()), "lifetime_s": ask.lifetime_s or 0,
            "task_id": ask.task_id or "", "purpose": ask.purpose or "", "actor": "",
            "delegation_depth": 0, "subject_issuer": "", "jti": "",
            "requested_scopes": sorted(ask.scopes or ()),
            "requested_lifetime_s": ask.lifetime_s or 0}


def _planned_context(ask: ExchangeAsk, plan: Plan) -> dict[str, Any]:
    """The context of ``credential.issue``: what the credential would carry."""
    return {"scopes": sorted(plan.scopes), "lifetime_s": plan.lifetime_s,
            "task_id": plan.task.id, "purpose": plan.task.purpose,
            "actor": plan.identity.actor or "", "delegation_depth": plan.identity.chain_depth,
            "subject_issuer": plan.identity.issuer, "jti": plan.jti,
            "requested_scopes": sorted(ask.scopes or ()),
            "requested_lifetime_s": ask.lifetime_s or 0}


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


__all__ = ["Broker", "Issued", "Refused"]
