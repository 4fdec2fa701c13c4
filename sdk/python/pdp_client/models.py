"""Wire types of the SDK: the resource you ask about and the decision you get back.

Plain frozen dataclasses (the thin client depends on httpx only). A
``Decision`` has the same fields as the PDP's ``/v1/authorize`` answer, plus
``cached``; a decision the SDK made itself because the PDP could not answer
(fail closed) has ``decision_id`` None and a ``pdp.*`` reason code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

# Reason codes of decisions the SDK makes itself (the PDP's own codes are in its README).
PDP_UNREACHABLE = "pdp.unreachable"   # connection refused / timed out, after retries
PDP_ERROR = "pdp.error"               # 5xx, or an answer that is not a decision
PDP_REJECTED = "pdp.rejected"         # 4xx: the PDP refused the request as sent
IDENTITY_MISSING = "identity.missing"  # (FastAPI/middleware) the caller sent no credential
# This service's own credential could not be had (e.g. the SPIFFE Workload API is down).
PDP_CREDENTIAL_UNAVAILABLE = "pdp.credential_unavailable"


@dataclass(frozen=True, slots=True)
class Resource:
    """A Cedar entity: ``Resource("App::Dataset", "sales-daily")``.

    ``attrs``/``parents`` describe a resource the policy bundle does not define;
    the PDP checks them against its schema.
    """

    type: str
    id: str
    attrs: Mapping[str, Any] | None = None
    parents: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, value: ResourceLike, *, namespace: str | None = None) -> Resource:
        """A ``Resource`` from itself, a ``(type, id)`` tuple or a ``{type, id, ...}`` dict.

        With ``namespace``, a bare type (``"Dataset"``) becomes ``"<namespace>::Dataset"``.
        """
        if isinstance(value, Resource):
            resource = value
        elif isinstance(value, Mapping):
            resource = cls(type=str(value["type"]), id=str(value["id"]),
                           attrs=value.get("attrs"),
                           parents=tuple((str(p["type"]), str(p["id"]))
                                         for p in value.get("parents") or ()))
        elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
            resource = cls(type=str(value[0]), id=str(value[1]))
        else:
            raise TypeError(f"not a resource: {value!r}; give Resource(type, id) or (type, id)")
        if namespace and "::" not in resource.type:
            resource = replace(resource, type=f"{namespace}::{resource.type}")
        return resource

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "id": self.id}
        if self.attrs is not None:
            out["attrs"] = dict(self.attrs)
        if self.parents:
            out["parents"] = [{"type": t, "id": i} for t, i in self.parents]
        return out


ResourceLike = Resource | tuple[str, str] | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Reason:
    """A determining policy: id, effect, its ``@reason`` and optional ``@advice``."""

    policy: str
    effect: str
    message: str
    advice: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """allow or deny, with why. Read ``allowed``; a deny is never an exception."""

    decision: Literal["allow", "deny"]
    decision_id: str | None
    reason_codes: tuple[str, ...]
    explanation: str
    reasons: tuple[Reason, ...] = ()
    principal: str | None = None
    action: str | None = None
    resource: str | None = None
    valid_until: datetime | None = None
    timestamp: datetime | None = None
    context_version: str | None = None
    policy_version: Mapping[str, Any] | None = None
    cached: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def made_by_sdk(self) -> bool:
        """True for a fail-closed deny the SDK gave because the PDP did not answer."""
        return self.decision_id is None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        """Parse a ``/v1/authorize`` answer (raises ``ValueError`` if it is not one)."""
        verdict = data.get("decision")
        if verdict not in ("allow", "deny"):
            raise ValueError(f"not a decision: decision={verdict!r}")
        live = data.get("context") if isinstance(data.get("context"), Mapping) else {}
        version = live.get("version") if live else None
        return cls(
            decision=verdict,
            decision_id=_str_or_none(data.get("decision_id")),
            reason_codes=tuple(str(c) for c in data.get("reason_codes") or ()),
            explanation=str(data.get("explanation") or ""),
            reasons=tuple(Reason(policy=str(r.get("policy")), effect=str(r.get("effect")),
                                 message=str(r.get("message")), advice=r.get("advice"))
                          for r in data.get("reasons") or ()),
            principal=_str_or_none(data.get("principal")),
            action=_str_or_none(data.get("action")),
            resource=_str_or_none(data.get("resource")),
            valid_until=_time(data.get("valid_until")),
            timestamp=_time(data.get("timestamp")),
            context_version=str(version) if version is not None else None,
            policy_version=data.get("policy_version"),
            raw=dict(data),
        )

    @classmethod
    def fail_closed(cls, code: str, explanation: str) -> Decision:
        """A deny the SDK makes itself (the PDP did not answer, or not with a decision)."""
        return cls(decision="deny", decision_id=None, reason_codes=(code,),
                   explanation=explanation)

    def as_dict(self) -> dict[str, Any]:
        """The explanation a service can hand to its caller (e.g. in a 403 body)."""
        return {"decision": self.decision, "decision_id": self.decision_id,
                "reason_codes": list(self.reason_codes), "explanation": self.explanation,
                "reasons": [{"policy": r.policy, "effect": r.effect, "message": r.message,
                             **({"advice": r.advice} if r.advice else {})}
                            for r in self.reasons]}


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


__all__ = ["Decision", "IDENTITY_MISSING", "PDP_CREDENTIAL_UNAVAILABLE", "PDP_ERROR",
           "PDP_REJECTED", "PDP_UNREACHABLE",
           "Reason", "Resource", "ResourceLike"]
