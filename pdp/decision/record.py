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
from typing import Any, Protocol

from pdp.decision.cedar_request import credential_facts
from pdp.decision.identity_parts import IdentityParts, credential_facts_record
from pdp.decision.model import AuthorizeInput, Decision
from pdp.engine.actions import ActionInfo, UnknownAction
from pdp.engine.bundle import Bundle
from pdp.engine.pdp_schema import WORKLOAD_TYPE


class RequestRedactor(Protocol):
    """Erases configured parts of the logged request (``pdp.audit.auditing.redact.Redactor``)."""

    def redact(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]: ...

INSTANCE = f"{socket.gethostname()}:{os.getpid()}"
"""This process in the log's ``instance`` field: host and pid. Reset in a forked child
(``pdp serve --workers N`` forks its workers), or every worker would log the parent's."""


def _reset_instance() -> None:
    global INSTANCE
    INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


os.register_at_fork(after_in_child=_reset_instance)


def decision_record(decision: Decision, request: AuthorizeInput, *, latency_us: int,
                    credential_sha256: str | None = None, instance: str | None = None,
                    bundle: Bundle | None = None,
                    redactor: RequestRedactor | None = None,
                    parts: IdentityParts | None = None) -> dict[str, Any]:
    """The record the decision log keeps for ``decision`` (JSON-able, flat).

    ``bundle`` is the bundle the decision was made with: with it the record
    also keeps what replay needs (``action_uid``, the ``principal_entity`` as
    Cedar saw it, the ``credential_context`` as used). ``redactor`` erases
    configured pointers from ``request`` and lists them in ``redacted``.
    ``parts``: the caller's memo of the identity's parts (a ``DecisionService`` holds
    one); without it they are rendered afresh, to the same values.
    """
    identity = decision.identity
    parts = parts if parts is not None else IdentityParts()
    logged_request: dict[str, Any] = {
        "action": request.action,
        "resource": {"type": request.resource.type, "id": request.resource.id,
                     "attrs": _jsonable(request.resource.attrs),
                     "parents": [list(p) for p in request.resource.parents]},
        "context": _jsonable(request.context),
    }
    redacted: list[str] = []
    if redactor:
        logged_request, redacted = redactor.redact(logged_request)
    action_info = _resolved_action(bundle, request.action) if identity is not None else None
    return {
        "decision_id": decision.decision_id,
        "kind": "decision",
        "timestamp": decision.timestamp_text,
        "instance": instance or INSTANCE,
        "request_id": request.request_id,
        "pep": request.pep,
        "principal": identity.principal_id if identity else None,
        "credential": (parts.facts(identity, credential_sha256) if identity is not None
                       else credential_facts_record(None, credential_sha256,
                                                    decision.proven_principal)),
        "action": decision.action,
        "resource": decision.resource,
        "request": logged_request,
        "redacted": redacted,
        "action_uid": action_info.cedar if action_info is not None else None,
        "principal_entity": (parts.entity(identity, bundle)
                             if request.asserted is None
                             or request.asserted.type == WORKLOAD_TYPE else None),
        # A subject a trusted PEP asserted without a credential (AuthZEN), and who asserted it.
        "asserted": request.asserted is not None,
        "asserted_subject": _asserted_record(request),
        "credential_context": (_credential_context(decision)
                               if identity is not None and action_info is not None
                               and action_info.declares_credential else None),
        "live": decision.context,
        "policy_version": decision.policy_version,
        "decision": decision.decision,
        "reasons": [r.as_dict() for r in decision.reasons],
        "reason_codes": [str(c) for c in decision.reason_codes],
        "errors": [e.as_dict() for e in decision.errors],
        "explanation": decision.explanation,
        "diagnosis": [d.as_dict() for d in decision.diagnosis],
        "grants": [g.as_dict() for g in decision.grants],
        "valid_until": decision.valid_until_iso,
        "latency_us": latency_us,
    }


def _credential_context(decision: Decision) -> dict[str, Any] | None:
    """``context.credential`` as Cedar saw it: the one ``decide()`` computed, else (a
    decision refused before Cedar ran) the same facts computed here."""
    if decision.credential_context is not None:
        return decision.credential_context
    return credential_facts(decision.identity, decision.timestamp) if decision.identity else None


def _resolved_action(bundle: Bundle | None, action: str) -> ActionInfo | None:
    """The action as the bundle resolves it (the same lookup ``decide()`` made), or None."""
    if bundle is None:
        return None
    try:
        return bundle.actions.resolve(action)
    except UnknownAction:
        return None


def _asserted_record(request: AuthorizeInput) -> dict[str, Any] | None:
    subject = request.asserted
    if subject is None:
        return None
    return {"type": subject.type, "id": subject.id, "asserted_by": subject.asserted_by,
            "properties": _jsonable(subject.properties)}


def _jsonable(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def admin_event_record(event: str, *, principal: str | None, authorized_by: str | None,
                       detail: Mapping[str, Any], timestamp: str, event_id: str,
                       request_id: str | None = None,
                       instance: str | None = None) -> dict[str, Any]:
    """An administrative event (context change, revocation, reload, ...) for the same chain.

    ``authorized_by`` is the decision id that allowed the change (None for the
    PDP's own actions, such as a reload on file change).
    """
    return {
        "decision_id": event_id,
        "kind": "admin",
        "timestamp": timestamp,
        "instance": instance or INSTANCE,
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
