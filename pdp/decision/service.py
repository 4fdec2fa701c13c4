"""The decision service: verify the credential, decide, record, answer.

Every door (HTTP, AuthZEN, gateways, ``pdp check``) calls ``authorize`` on the
same ``DecisionService``, refusals at the door included (``AuthorizeInput.refused``),
as every Cerbos door calls ``Engine.Check``. A decision is returned only after its
record is committed to the log ("acknowledged means recorded"); if the log cannot take
it, the answer is a deny with ``audit.unavailable``. The log is anything that meets
``pdp.decision.log.DecisionLog``; the composition root (``pdp.components``) passes
one of the ``pdp.audit`` stores.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from context.clock import Clock
from context.grants import GrantStore
from context.provider import LiveContextProvider
from context.scope import resource_tags
from pdp.decision.decide import (
    DEFAULT_MAX_TTL,
    Outcomes,
    asserted_principal,
    decide,
    new_decision_id,
)
from pdp.decision.identity_parts import IdentityParts
from pdp.decision.log import DecisionLog, LogUnavailable
from pdp.decision.model import AuthorizeInput, Decision, DecisionError
from pdp.decision.record import RequestRedactor, admin_event_record, decision_record
from pdp.engine.bundle import Bundle
from pdp.engine.store import BundleStore
from pdp.identity.errors import IdentityError, MissingCredential
from pdp.identity.model import BearerToken, Credential, VerifiedIdentity
from pdp.reasons import ReasonCode


class CredentialVerifier(Protocol):
    def verify(self, credential: Credential, now: datetime) -> VerifiedIdentity:
        """Return the verified identity or raise an ``IdentityError``."""
        ...


DecisionObserver = Callable[[Decision, float], None]
# Called with each decision and its request once the decision is final (recorded or
# refused by the log), e.g. the behaviour monitor (context.factory.BehaviourWatch).
DecisionListener = Callable[[Decision, AuthorizeInput], None]


@dataclass
class DecisionService:
    bundles: BundleStore
    verifier: CredentialVerifier
    live: LiveContextProvider
    log: DecisionLog
    clock: Clock
    max_ttl: timedelta = DEFAULT_MAX_TTL
    observer: DecisionObserver | None = None
    listeners: list[DecisionListener] = field(default_factory=list)
    # Erases configured request pointers before the record is written (pdp.audit.auditing.redact).
    redactor: RequestRedactor | None = None
    # Task grants (templates linked until an expiry), read by every decision.
    grants: GrantStore | None = None
    # An identity's principal entity and record parts, built once per cached identity:
    # this service's own (pdp.decision.identity_parts).
    identity_parts: IdentityParts = field(default_factory=IdentityParts, init=False,
                                          repr=False, compare=False)

    async def authorize(self, request: AuthorizeInput) -> Decision:
        """Decide one request and return only once its record is durable."""
        started = time.perf_counter()
        decision, record = self._decide(request, started)
        return await self._commit(decision, record, request, started)

    async def authorize_batch(self, requests: Sequence[AuthorizeInput]) -> list[Decision]:
        """Decide several requests; their records go to the log in one group commit."""
        started = time.perf_counter()
        decided = [self._decide(r, started) for r in requests]
        return list(await asyncio.gather(*(
            self._commit(d, rec, r, started) for (d, rec), r in zip(decided, requests))))

    def preview(self, request: AuthorizeInput) -> Decision:
        """Decide ``request`` without recording it: never an answer for a caller. The
        credential broker uses it to learn which policies would permit an exchange (their
        ``@max_lifetime_s``) before it asks, recorded, for the credential it will issue."""
        return self._decide(request, time.perf_counter())[0]

    def authorize_sync(self, request: AuthorizeInput) -> Decision:
        """The same as ``authorize`` for callers without an event loop (the CLI)."""
        started = time.perf_counter()
        decision, record = self._decide(request, started)
        try:
            self.log.append_sync(record)
        except LogUnavailable as e:
            decision = self._audit_failure(decision, request, e)
        self._observe(decision, started)
        self._notify(decision, request)
        return decision

    async def record_admin_event(self, event: str, *, principal: str | None,
                                 authorized_by: str | None, detail: dict[str, Any],
                                 request_id: str | None = None) -> dict[str, Any]:
        """Append an administrative event to the log's chain (raises ``LogUnavailable``)."""
        return await self.log.append(self._admin_record(event, principal, authorized_by,
                                                        detail, request_id))

    def record_admin_event_sync(self, event: str, *, principal: str | None,
                                authorized_by: str | None,
                                detail: dict[str, Any]) -> dict[str, Any]:
        return self.log.append_sync(self._admin_record(event, principal, authorized_by,
                                                       detail, None))

    def _admin_record(self, event: str, principal: str | None, authorized_by: str | None,
                      detail: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        now = self.clock.now()
        return admin_event_record(
            event, principal=principal, authorized_by=authorized_by, detail=detail,
            timestamp=now.isoformat().replace("+00:00", "Z"), event_id=new_decision_id(),
            request_id=request_id)

    def verify(self, credential: Credential | None, now: datetime) -> VerifiedIdentity:
        """Verify a credential or raise ``IdentityError`` (``MissingCredential`` for none)."""
        if credential is None:
            raise MissingCredential("no credential was presented")
        return self.verifier.verify(credential, now)

    def _decide(self, request: AuthorizeInput, started: float) -> tuple[Decision, dict[str, Any]]:
        now = self.clock.now()
        bundle = self.bundles.current
        principal = None
        if request.refused is not None:  # refused at the door: nothing to verify or evaluate
            decision = self._outcomes(request, now, request.verified, bundle).error(
                request.refused)
            return decision, self._record(decision, request, started, bundle)
        try:
            if request.verified is not None:
                identity = request.verified
            elif request.asserted is not None:
                # A trusted assertor named the subject (the API checked it may): no credential.
                identity, principal = asserted_principal(request.asserted)
            else:
                identity = self.verify(request.credential, now)
        except IdentityError as e:
            decision = replace(self._outcomes(request, now, None, bundle).error(
                DecisionError(e.code, e.message)), proven_principal=e.proven_principal)
        except ValueError as e:
            decision = self._outcomes(request, now, None, bundle).error(
                DecisionError(ReasonCode.REQUEST_INVALID, str(e)))
        else:
            if request.subject_id is not None and request.subject_id != identity.principal_id:
                decision = self._outcomes(request, now, identity, bundle).error(DecisionError(
                    ReasonCode.REQUEST_INVALID,
                    f"subject.id {request.subject_id!r} is not the principal of the "
                    f"presented credential ({identity.principal_id!r})"))
                return decision, self._record(decision, request, started, bundle)
            # Incidents can be scoped to the resource's type or tags (context.scope).
            live = self.live.snapshot(identity.principal_id, now,
                                      resource_type=request.resource.type,
                                      resource_tags=resource_tags(request.resource, bundle))
            decision = decide(bundle, identity=identity, action=request.action,
                              resource=request.resource, context=request.context, live=live,
                              now=now, max_ttl=self.max_ttl, principal=principal,
                              explain=request.explain, parts=self.identity_parts,
                              grants=self.grants.active(now) if self.grants else ())
        return decision, self._record(decision, request, started, bundle)

    def _record(self, decision: Decision, request: AuthorizeInput, started: float,
                bundle: Bundle | None) -> dict[str, Any]:
        identity = decision.identity
        # A verified identity carries its credential's SHA-256, which the record keeps
        # (``credential_facts_record``): hashing the presented token again is only for
        # the credentials that did not verify (and identities built without one).
        sha256 = (None if identity is not None and identity.credential_sha256
                  else _credential_sha256(request.credential))
        return decision_record(decision, request, latency_us=_micros_since(started),
                               credential_sha256=sha256, bundle=bundle,
                               redactor=self.redactor, parts=self.identity_parts)

    async def _commit(self, decision: Decision, record: dict[str, Any],
                      request: AuthorizeInput, started: float) -> Decision:
        try:
            await self.log.append(record)
        except LogUnavailable as e:
            decision = self._audit_failure(decision, request, e)
        self._observe(decision, started)
        self._notify(decision, request)
        return decision

    def _audit_failure(self, decision: Decision, request: AuthorizeInput,
                       error: Exception) -> Decision:
        """Fail closed: a decision that cannot be recorded is not given. The deny names
        the policy version the decision was made under, not whatever serves by now."""
        denied = self._outcomes(request, decision.timestamp, decision.identity, None).error(
            DecisionError(ReasonCode.AUDIT_UNAVAILABLE,
                          f"the decision log could not record the decision: {error}"))
        return replace(denied, version=decision.version)

    def _outcomes(self, request: AuthorizeInput, now: datetime,
                  identity: VerifiedIdentity | None, bundle: Bundle | None) -> Outcomes:
        """Builds error decisions under ``bundle``: the one the request started with, so
        a reload in between never makes a record name a version that did not decide."""
        return Outcomes(decision_id=new_decision_id(), now=now, identity=identity,
                        action=request.action, resource=request.resource.cedar, live=None,
                        bundle=bundle, max_ttl=self.max_ttl)

    def _observe(self, decision: Decision, started: float) -> None:
        if self.observer is not None:
            self.observer(decision, time.perf_counter() - started)

    def _notify(self, decision: Decision, request: AuthorizeInput) -> None:
        for listener in self.listeners:
            listener(decision, request)


def _micros_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)


def _credential_sha256(credential: Credential | None) -> str | None:
    if credential is None:
        return None
    raw = credential.token if isinstance(credential, BearerToken) else credential.pem
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
