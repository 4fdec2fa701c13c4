"""The Decision every door returns, and the request that produced it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from context.model import frozen_memo
from pdp.engine.actions import cedar_uid
from pdp.identity.model import Credential, VerifiedIdentity

if TYPE_CHECKING:
    from context.model import LiveSnapshot
    from pdp.engine.bundle import BundleVersion
    from pdp.engine.grants import Grant
    from pdp.engine.whynot import PolicyDiagnosis


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """The resource as the PEP names it: Cedar type and id, optionally attributes/parents."""

    type: str
    id: str
    attrs: Mapping[str, Any] | None = None
    parents: tuple[tuple[str, str], ...] = ()

    @property
    def cedar(self) -> str:
        return cedar_uid(self.type, self.id)


@dataclass(frozen=True, slots=True)
class AssertedSubject:
    """A subject a trusted PEP asserts without a credential (AuthZEN style).

    Only PEPs configured as ``trusted_assertors`` may assert; the decision is
    evaluated like any other, and its record is marked ``asserted`` with the
    PEP that asserted it. ``type`` is the Cedar entity type (``Pdp::Workload``,
    or a bundle type such as ``Photo::User``); ``properties`` become its
    attributes.
    """

    type: str
    id: str
    asserted_by: str
    properties: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuthorizeInput:
    """One question from a PEP: may the holder of ``credential`` do ``action`` on ``resource``?"""

    credential: Credential | None
    action: str
    resource: ResourceRef
    context: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    pep: str | None = None
    # Diagnose the policies (why / why not): None = for denies only, True = always.
    explain: bool | None = None
    # Set instead of a credential when a trusted assertor names the subject.
    asserted: AssertedSubject | None = None
    # The principal id the PEP names (AuthZEN `subject.id`): a verified credential
    # of another principal is denied (request.invalid).
    subject_id: str | None = None
    # The door refused the request before it could be asked (a gateway request no route
    # maps, a malformed forwarded certificate, a PEP not allowed to ask): the service
    # denies it with this error and records it like every other decision.
    refused: DecisionError | None = None
    # The credential was already verified by the caller (the credential broker verified
    # the subject and actor tokens, and decides for the identity the issued credential
    # would carry): the service decides for it as it is. ``credential`` is still given,
    # so the record keeps its SHA-256.
    verified: VerifiedIdentity | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    """A determining policy: its id, its effect and its ``@reason`` text."""

    policy: str
    effect: Literal["permit", "forbid"]
    message: str
    advice: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.policy, "effect": self.effect,
                               "message": self.message}
        if self.advice:
            out["advice"] = self.advice
        return out


@dataclass(frozen=True, slots=True)
class DecisionError:
    """Something that went wrong on the way to the decision, with its reason code."""

    code: str
    message: str
    policy: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "policy": self.policy}


@dataclass(frozen=True, slots=True)
class Decision:
    """allow or deny, and everything a person or an auditor needs to understand it."""

    decision_id: str
    decision: Literal["allow", "deny"]
    timestamp: datetime
    principal: str | None
    action: str | None
    resource: str | None
    reasons: tuple[Reason, ...]
    reason_codes: tuple[str, ...]
    explanation: str
    errors: tuple[DecisionError, ...]
    version: BundleVersion | None
    live: LiveSnapshot | None
    valid_until: datetime
    identity: VerifiedIdentity | None = None
    # Why policies did or did not apply (denies, or on request): computed by Cedar.
    diagnosis: tuple[PolicyDiagnosis, ...] = ()
    # The task grants linked for this decision (recorded, so it can be replayed).
    grants: tuple[Grant, ...] = ()
    # A refused credential (expired, revoked) whose signature or certificate path
    # proved whose it is (pdp.identity.errors). Never the name a credential claims.
    proven_principal: str | None = None
    # ``context.credential`` as Cedar saw it, when the action declares it: the facts of
    # ``identity`` at ``timestamp`` (``credential_facts``), kept for the decision record.
    credential_context: dict[str, Any] | None = field(default=None, repr=False,
                                                      compare=False)
    # ``live`` as JSON, rendered at the first read of ``context`` (see there).
    _live_json: dict[str, Any] | None = field(default=None, init=False, repr=False,
                                              compare=False)
    # ``timestamp`` and ``valid_until`` as text, formatted at their first read.
    _timestamp_text: str | None = field(default=None, init=False, repr=False, compare=False)
    _valid_until_iso: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    # Rendered on demand: the snapshot and version are immutable, and a caller
    # that only needs allow/deny (an SDK cache, `pdp test`) never pays for them.
    @property
    def policy_version(self) -> dict[str, Any] | None:
        return self.version.as_dict() if self.version is not None else None

    @property
    def context(self) -> dict[str, Any] | None:
        """The live-context snapshot the decision used, as JSON.

        Rendered once per decision (its dozen timestamps formatted once): the decision
        record and the answer both read it, and hold the same dict. Neither changes it:
        the log serializes its record when it is appended (``pdp.audit.records.prepare``),
        before the answer is built. ``dataclasses.replace`` starts a copy unrendered, so
        a decision with another snapshot never shows this one's.
        """
        if self.live is None:
            return None
        return frozen_memo(self, "_live_json", self.live.as_dict)

    @property
    def timestamp_text(self) -> str:
        """``timestamp`` in RFC 3339 with ``Z``: the record and the answer both show it."""
        return frozen_memo(self, "_timestamp_text", self._format_timestamp)

    def _format_timestamp(self) -> str:
        live, at = self.live, self.timestamp
        if live is not None and live.now is at and at.tzinfo is UTC:
            return live.now_text()  # the same instant, the same text: formatted once
        return at.isoformat().replace("+00:00", "Z")

    @property
    def valid_until_iso(self) -> str:
        """``valid_until.isoformat()``: the record shows it so, the answer with ``Z``."""
        return frozen_memo(self, "_valid_until_iso", self.valid_until.isoformat)

    def as_dict(self) -> dict[str, Any]:
        """The response body of ``/v1/authorize`` (and of ``pdp check``)."""
        return {
            "decision": self.decision,
            "decision_id": self.decision_id,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "reasons": [r.as_dict() for r in self.reasons],
            "reason_codes": list(self.reason_codes),
            "explanation": self.explanation,
            "errors": [e.as_dict() for e in self.errors],
            "policy_version": self.policy_version,
            "context": self.context,
            "valid_until": self.valid_until_iso.replace("+00:00", "Z"),
            "timestamp": self.timestamp_text,
            "diagnosis": [d.as_dict() for d in self.diagnosis],
        }
