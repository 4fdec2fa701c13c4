"""The decision record: one flat schema, built by one function, for every outcome.

It holds what a person needs to understand the decision and what
``decide()`` needs to run it again: the request as sent (with redactions),
the principal's facts (never the raw credential, only its SHA-256), the live
snapshot used, the policy version, determining policies and errors.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from pdp.decision.model import AuthorizeInput, Decision
from pdp.identity.model import VerifiedIdentity

INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


def decision_record(decision: Decision, request: AuthorizeInput, *, latency_us: int,
                    credential_sha256: str | None = None, instance: str = INSTANCE) -> dict[str, Any]:
    """The record the decision log keeps for ``decision`` (JSON-able, flat)."""
    identity = decision.identity
    return {
        "decision_id": decision.decision_id,
        "kind": "decision",
        "timestamp": _iso(decision),
        "instance": instance,
        "request_id": request.request_id,
        "pep": request.pep,
        "principal": identity.principal_id if identity else None,
        "credential": credential_facts_record(identity, credential_sha256),
        "action": decision.action,
        "resource": decision.resource,
        "request": {
            "action": request.action,
            "resource": {"type": request.resource.type, "id": request.resource.id,
                         "attrs": _jsonable(request.resource.attrs),
                         "parents": [list(p) for p in request.resource.parents]},
            "context": _jsonable(request.context),
        },
        "live": decision.context,
        "policy_version": decision.policy_version,
        "decision": decision.decision,
        "reasons": [r.as_dict() for r in decision.reasons],
        "reason_codes": [str(c) for c in decision.reason_codes],
        "errors": [e.as_dict() for e in decision.errors],
        "explanation": decision.explanation,
        "valid_until": decision.valid_until.isoformat(),
        "latency_us": latency_us,
    }


def credential_facts_record(identity: VerifiedIdentity | None,
                            credential_sha256: str | None) -> dict[str, Any] | None:
    if identity is None:
        return {"sha256": credential_sha256} if credential_sha256 else None
    return {
        "issuer": identity.issuer,
        "kind": identity.kind,
        "jti": identity.jti,
        "serial": identity.serial,
        "sha256": identity.credential_sha256 or credential_sha256,
        "issued_at": identity.issued_at.isoformat() if identity.issued_at else None,
        "expires_at": identity.expires_at.isoformat() if identity.expires_at else None,
        "trust_domain": identity.trust_domain,
        "scopes": sorted(identity.scopes),
        "groups": sorted(identity.groups),
        "actor": identity.actor,
        "actor_chain": list(identity.actor_chain),
        "flags": list(identity.flags),
    }


def _iso(decision: Decision) -> str:
    return decision.timestamp.isoformat().replace("+00:00", "Z")


def _jsonable(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def admin_event_record(event: str, *, principal: str | None, authorized_by: str | None,
                       detail: Mapping[str, Any], timestamp: str, event_id: str,
                       request_id: str | None = None,
                       instance: str = INSTANCE) -> dict[str, Any]:
    """An administrative event (context change, revocation, reload, ...) for the same chain.

    ``authorized_by`` is the decision id that allowed the change (None for the
    PDP's own actions, such as a reload on file change).
    """
    return {
        "decision_id": event_id,
        "kind": "admin",
        "timestamp": timestamp,
        "instance": instance,
        "request_id": request_id,
        "pep": None,
        "principal": principal,
        "event": event,
        "authorized_by": authorized_by,
        "detail": dict(detail),
        "decision": None,
        "action": None,
        "resource": None,
        "reasons": [],
        "reason_codes": [],
        "errors": [],
        "explanation": f"{event} by {principal or 'the PDP'}",
    }
