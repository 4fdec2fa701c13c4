"""``/v1/revocations``: the live deny-list, managed by the bundle's own admin policies.

Each call is authorized like any decision (``Pdp::Action::"identity.revocations.read"``,
``"identity.revoke"``, ``"identity.unrevoke"`` on ``Pdp::Admin::"identity"``; the
example bundle lets group ``sre`` do them) and each change is appended to the
decision log's hash chain as an administrative event. A revocation takes
effect on the very next request, verified-credential cache included.

Order of effects, chosen for safety: a revocation is committed to the durable
admin state first (``context.durable``; if it cannot be, 503 and nothing
changed), so it is in force and survives restarts, and then recorded (if the
log is down the credential is still refused, and the caller gets 503 saying
the change is unrecorded); an unrevocation is recorded first and applied only
once recorded.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from context.revocations import InvalidRevocation, RevocationStore, new_revocation
from pdp.api.admin_auth import AdminCaller, admin_access
from pdp.api.deps import ComponentsDep
from pdp.api.jsonbody import StrictJSONRoute
from pdp.api.models import Problem
from pdp.api.problems import problem
from pdp.audit.errors import AuditUnavailable
from pdp.components import Components
from pdp.identity.errors import BadSpiffeId
from pdp.identity.spiffe_id import parse_spiffe_id

router = APIRouter(prefix="/v1", tags=["identity"], route_class=StrictJSONRoute)


class RevocationRequest(BaseModel):
    """What to refuse from now on."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "jti", "value": "b5a1e7c0-9d3e-4f51-8c2a-0e6f7a9b1c2d",
         "reason": "token leaked in a CI log"},
        {"kind": "spiffe_id", "value": "spiffe://example.org/agents/reporter",
         "reason": "agent compromised"},
        {"kind": "issued_before", "value": "example.org",
         "before": "2026-11-23T10:00:00Z", "reason": "signing key rotated after exposure"},
    ]})

    kind: Literal["jti", "cert", "spiffe_id", "spiffe_prefix", "issued_before"] = Field(
        description="jti: one token; cert: one certificate (issuer DN + hex serial); "
                    "spiffe_id: a workload (as subject or actor); spiffe_prefix: every ID "
                    "at or under a path; issued_before: everything an issuer or trust domain "
                    "issued before `before`.")
    value: str = Field(min_length=1, max_length=2048,
                       description="The jti, serial, SPIFFE ID, prefix, or issuer/trust domain.")
    issuer: str | None = Field(
        default=None, max_length=2048,
        description="cert: the issuer DN (as the decision log records it), required; "
                    "jti: optionally the token's `iss`.")
    before: datetime | None = Field(default=None, description="issued_before: the cut-off.")
    reason: str = Field(default="", max_length=1024, description="Why, for the audit trail.")
    expires_at: datetime | None = Field(
        default=None, description="When the entry stops applying (e.g. after the longest "
                                  "lifetime of what it refuses); default: never.")


def _entries(store: RevocationStore) -> list[dict[str, Any]]:
    return [e.to_json() for e in store.list()]


def _store(components: Components) -> RevocationStore:
    if components.revocations is None:  # pragma: no cover - build_components always sets it
        raise RuntimeError("no revocation store is configured")
    return components.revocations


@router.get("/revocations", summary="List revocations in force",
            responses={401: {"model": Problem}, 403: {"model": Problem}})
async def list_revocations(
        components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("identity.revocations.read"))],
) -> JSONResponse:
    """Every revocation, oldest first, and the store's `version`.

    Needs `Pdp::Action::"identity.revocations.read"`."""
    store = _store(components)
    return JSONResponse({"revocations": _entries(store), "version": store.version})


@router.post("/revocations", status_code=201, summary="Revoke a credential or workload",
             responses={200: {"description": "Already revoked: the existing entry"},
                        401: {"model": Problem}, 403: {"model": Problem},
                        422: {"model": Problem}, 503: {"model": Problem}})
async def revoke(
        body: RevocationRequest, components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("identity.revoke"))],
) -> JSONResponse:
    """Refuse a token (jti), a certificate, a workload, a SPIFFE ID prefix, or everything
    an issuer or trust domain issued before a time — from the very next request on.

    Idempotent: the same revocation again answers 200 with the existing entry. Needs
    `Pdp::Action::"identity.revoke"`; recorded as an `identity.revoke` admin event."""
    try:
        value = _checked_value(body.kind, body.value)
        entry = new_revocation(
            body.kind, value, issuer=body.issuer, before=body.before, reason=body.reason,
            created_by=caller.principal, created_at=components.clock.now(),
            expires_at=body.expires_at)
    except (InvalidRevocation, ValueError) as e:
        return problem(422, "Invalid revocation", str(e), [{"field": "body", "msg": str(e),
                                                            "type": "value_error"}])
    store = _store(components)
    # A durable commit, then Redis fan-out (bounded by redis_timeout_s): off the event
    # loop, so decisions never wait on it.
    stored, created = await asyncio.to_thread(store.add, entry)
    if created:
        try:
            await components.service.record_admin_event(
                "identity.revoke", principal=caller.principal,
                authorized_by=caller.decision_id, detail={"revocation": stored.to_json()})
        except AuditUnavailable as e:
            return problem(503, "Revocation in force but not recorded",
                           f"{stored.id} refuses credentials now, but the decision log could "
                           f"not record it: {e}")
    return JSONResponse({"revocation": stored.to_json(), "created": created,
                         "version": store.version}, status_code=201 if created else 200)


@router.delete("/revocations/{revocation_id}", summary="Lift a revocation",
               responses={401: {"model": Problem}, 403: {"model": Problem},
                          404: {"model": Problem}, 503: {"model": Problem}})
async def unrevoke(
        revocation_id: str, components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("identity.unrevoke"))],
) -> JSONResponse:
    """Remove a revocation (its `id` from the list). Recorded first as an
    `identity.unrevoke` admin event, then applied. Needs `Pdp::Action::"identity.unrevoke"`."""
    store = _store(components)
    entry = next((e for e in store.list() if e.id == revocation_id), None)
    if entry is None:
        return problem(404, "Revocation not found", f"no revocation with id {revocation_id}")
    try:
        await components.service.record_admin_event(
            "identity.unrevoke", principal=caller.principal,
            authorized_by=caller.decision_id, detail={"revocation": entry.to_json()})
    except AuditUnavailable as e:
        return problem(503, "Not lifted", f"the decision log could not record it: {e}")
    removed = await asyncio.to_thread(store.remove, revocation_id)
    return JSONResponse({"removed": (removed or entry).to_json(), "version": store.version})


def _checked_value(kind: str, value: str) -> str:
    """SPIFFE IDs and prefixes are checked with the strict parser (ValueError)."""
    if kind not in ("spiffe_id", "spiffe_prefix"):
        return value
    text = value.removesuffix("/*").rstrip("/") if kind == "spiffe_prefix" else value
    try:
        spiffe_id = parse_spiffe_id(text)
    except BadSpiffeId as e:
        raise ValueError(f"{value!r} is not a SPIFFE ID ({e.reason})") from e
    if kind == "spiffe_id" and spiffe_id.is_root:
        raise ValueError(f"{value!r} names a trust domain: use kind spiffe_prefix")
    return str(spiffe_id)


__all__ = ["RevocationRequest", "router"]
