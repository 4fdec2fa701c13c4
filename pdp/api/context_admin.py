"""``/v1/context``: incidents and risk levels, managed by the bundle's own admin policies.

Each call is authorized like any decision (``Pdp::Action::"context.read"``,
``"context.incident.set"``, ``"context.incident.clear"``, ``"context.risk.set"``
on ``Pdp::Admin::"context"``; the example bundle lets group ``sre`` do them), so
refusals are in the decision log too; each change is appended to the log's
hash chain as an administrative event naming who made it and the decision
that allowed it.

Order of effects, chosen for safety (as for revocations): a change that makes
decisions stricter (declaring an incident, raising risk) is applied first and
then recorded: if the log is down the restriction still holds and the caller
gets 503 saying it is unrecorded. A change that relaxes them (ending an
incident, lowering risk) is recorded first and applied only once recorded.
With the Redis backend an unreachable Redis is 503 and nothing changes.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from context.live import LiveContext
from context.state import (
    INCIDENT_LEVELS,
    RISK_LEVELS,
    RiskEntry,
    Scope,
    ScopeKind,
    parse_level,
    risk_name,
)
from context.store import ContextUnavailable
from pdp.api.admin_auth import AdminCaller, admin_access
from pdp.api.deps import ComponentsDep, request_id
from pdp.api.jsonbody import StrictJSONRoute
from pdp.api.models import Problem
from pdp.api.problems import problem
from pdp.audit.errors import AuditUnavailable
from pdp.components import Components
from pdp.identity.errors import BadSpiffeId
from pdp.identity.spiffe_id import parse_spiffe_id

router = APIRouter(prefix="/v1/context", tags=["context"], route_class=StrictJSONRoute)

_REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No valid credential"},
    403: {"model": Problem, "description": "No policy permits the admin action"},
}
_WRITE: dict[int | str, dict[str, Any]] = {
    **_REFUSED,
    422: {"model": Problem, "description": "A field is missing or invalid"},
    503: {"model": Problem, "description": "The context store or the decision log is down"},
}


class IncidentRequest(BaseModel):
    """Declare incident mode for a scope (or replace the incident with the same `id`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"scope": "resource_tag:pii", "level": "critical",
         "reason": "customer data exfiltration suspected", "duration_s": 3600},
        {"scope": "spiffe_prefix:spiffe://example.org/agents", "level": 2,
         "reason": "agent platform compromised", "id": "INC-4711"},
        {"scope": "global", "level": "minor", "reason": "game day",
         "ends_at": "2026-11-23T18:00:00Z"},
    ]})

    scope: str = Field(
        default="global", max_length=2048,
        description="`global`, `trust_domain:<name>`, `spiffe_prefix:<spiffe://td/path>`, "
                    "`resource_type:<Cedar type>` or `resource_tag:<tag>` (the resource's "
                    "`tags` attribute).")
    level: int | str = Field(
        default=2, description="1 minor, 2 major, 3 critical (number or name). Policies see "
                               "`context.live.incident_level`.",
        json_schema_extra={"anyOf": [{"type": "integer", "minimum": 1, "maximum": 3},
                                     {"enum": ["1", "2", "3", *INCIDENT_LEVELS[1:]]}]})
    reason: str = Field(min_length=1, max_length=1024, description="Why, for people and the log.")
    id: str | None = Field(default=None, max_length=64,
                           description="Your incident id (e.g. a ticket); default: generated.")
    ends_at: datetime | None = Field(default=None, description="Ends by itself at this time.")
    duration_s: int | None = Field(default=None, gt=0, le=30 * 86400,
                                   description="Ends by itself this many seconds from now.")

    @field_validator("level")
    @classmethod
    def _level(cls, value: int | str) -> int:
        level = parse_level(value, INCIDENT_LEVELS)
        if level == 0:
            raise ValueError("an incident's level is 1 (minor) ... 3 (critical)")
        return level

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        return str(checked_scope(value))

    @model_validator(mode="after")
    def _one_end(self) -> IncidentRequest:
        if self.ends_at is not None and self.duration_s is not None:
            raise ValueError("give ends_at or duration_s, not both")
        if self.ends_at is not None and self.ends_at.tzinfo is None:
            raise ValueError("ends_at needs a time zone (e.g. Z)")
        return self


class RiskRequest(BaseModel):
    """Set the global risk level, or one principal's."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"level": "high", "reason": "active credential-stuffing campaign", "ttl_s": 7200},
        {"principal": "spiffe://example.org/agents/reporter", "level": 3,
         "reason": "agent misbehaving, under investigation"},
        {"principal": "spiffe://example.org/agents/reporter", "level": 0,
         "reason": "investigated: false alarm"},
    ]})

    level: int | str = Field(description="0 low, 1 medium, 2 high, 3 critical (number or name). "
                                         "For a principal, 0 clears its level (and any "
                                         "automatic raise).",
                             json_schema_extra={"anyOf": [
                                 {"type": "integer", "minimum": 0, "maximum": 3},
                                 {"enum": ["0", "1", "2", "3", *RISK_LEVELS]}]})
    principal: str | None = Field(
        default=None, min_length=1, max_length=2048,
        description="A principal id (SPIFFE ID or the issuer's principal claim); omit for the "
                    "global level. Setting it replaces an automatic raise.")
    reason: str = Field(min_length=1, max_length=1024, description="Why, for people and the log.")
    expires_at: datetime | None = Field(default=None, description="Until when; default: "
                                                                  "`context.risk_ttl_s` from now.")
    ttl_s: int | None = Field(default=None, gt=0, le=30 * 86400, description="For this long.")

    @field_validator("level")
    @classmethod
    def _level(cls, value: int | str) -> int:
        return parse_level(value)

    @model_validator(mode="after")
    def _one_end(self) -> RiskRequest:
        if self.expires_at is not None and self.ttl_s is not None:
            raise ValueError("give expires_at or ttl_s, not both")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a time zone (e.g. Z)")
        return self


def checked_scope(text: str) -> Scope:
    """Parse a scope; SPIFFE prefixes and trust domains go through the strict parser."""
    scope = Scope.parse(text)
    try:
        if scope.kind is ScopeKind.SPIFFE_PREFIX:
            parse_spiffe_id(scope.value.rstrip("/"))
            scope = Scope(ScopeKind.SPIFFE_PREFIX, scope.value.rstrip("/"))
        elif scope.kind is ScopeKind.TRUST_DOMAIN:
            parse_spiffe_id(f"spiffe://{scope.value}")
    except BadSpiffeId as e:
        raise ValueError(f"scope {text!r}: {e}") from e
    return scope


def _live(components: Components) -> LiveContext:
    live = components.live
    if not isinstance(live, LiveContext):  # pragma: no cover - build_components makes one
        raise RuntimeError("the configured live context cannot be administered")
    return live


async def _record(components: Components, event: str, caller: AdminCaller,
                  detail: dict[str, Any], request: Request) -> None:
    await components.service.record_admin_event(
        event, principal=caller.principal, authorized_by=caller.decision_id, detail=detail,
        request_id=request_id(request))


def _unavailable(e: ContextUnavailable) -> JSONResponse:
    return problem(503, "Context store unavailable", f"nothing was changed: {e}")


@router.get("", summary="The live context in force, with sources and ages",
            responses=_REFUSED)
async def show_context(
        components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("context.read"))],
        principal: Annotated[str | None, Query(
            min_length=1,
            description="Also show the snapshot a decision for this principal would see.")] = None,
        resource_type: Annotated[str | None, Query(
            min_length=1, description="... about this resource type")] = None,
        resource_tag: Annotated[list[Annotated[str, StringConstraints(min_length=1)]] | None,
                                Query(description="... with these tags")] = None,
) -> JSONResponse:
    """Incidents, global and per-principal risk (manual and automatic, with evidence),
    business hours, the store's health (reachable, age of the local copy) and the
    context `version`. Needs `Pdp::Action::"context.read"`."""
    live = _live(components)
    now = components.clock.now()
    body = live.describe(now)
    if principal is not None or resource_type is not None or resource_tag:
        body["snapshot"] = live.snapshot(principal, now, resource_type=resource_type,
                                         resource_tags=resource_tag or ()).as_dict()
    return JSONResponse(body)


@router.get("/version", summary="The context version (for PEP caches)")
async def context_version(components: ComponentsDep) -> dict[str, Any]:
    """The current context version and whether the context is degraded: cheap to poll.

    Every decision carries the version it was made with (`context.version`); a PEP
    cache that sees a different version here drops what it cached. Unauthenticated:
    it reveals only that something changed."""
    health = _live(components).health()
    return {"version": health["version"], "status": health["status"]}


@router.post("/incidents", status_code=201, summary="Declare an incident", responses=_WRITE)
async def declare_incident(
        body: IncidentRequest, request: Request, components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("context.incident.set"))],
) -> JSONResponse:
    """Declare incident mode for a scope, with a level, a reason and an optional end.
    In force at once on this replica and, with Redis, on every replica (pub/sub).

    Needs `Pdp::Action::"context.incident.set"`; recorded as a `context.incident.set`
    admin event (after it is in force)."""
    live = _live(components)
    now = components.clock.now()
    ends_at = body.ends_at or (now + timedelta(seconds=body.duration_s)
                               if body.duration_s else None)
    try:
        incident, version = await asyncio.to_thread(
            live.declare_incident, scope=Scope.parse(body.scope), level=int(body.level),
            reason=body.reason, now=now, set_by=caller.principal, ends_at=ends_at,
            authorized_by=caller.decision_id, incident_id=body.id)
    except ValueError as e:
        return problem(422, "Invalid incident", str(e),
                       [{"field": "body", "msg": str(e), "type": "value_error"}])
    except ContextUnavailable as e:
        return _unavailable(e)
    try:
        await _record(components, "context.incident.set", caller,
                      {"incident": incident.as_dict(), "version": version}, request)
    except AuditUnavailable as e:
        return problem(503, "Incident in force but not recorded",
                       f"{incident.id} is in force, but the decision log could not record "
                       f"it: {e}")
    return JSONResponse({"incident": incident.as_dict(), "version": version}, status_code=201)


@router.delete("/incidents/{incident_id}", summary="End an incident",
               responses={**_WRITE, 404: {"model": Problem}})
async def clear_incident(
        incident_id: str, request: Request, components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("context.incident.clear"))],
) -> JSONResponse:
    """End one incident by its `id`. Recorded first as a `context.incident.clear` admin
    event, then applied. Needs `Pdp::Action::"context.incident.clear"`."""
    return await _clear(components, caller, request, incident_id)


@router.delete("/incidents", summary="End every incident", responses=_WRITE)
async def clear_incidents(
        request: Request, components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("context.incident.clear"))],
) -> JSONResponse:
    """End all incidents. Recorded first, then applied.
    Needs `Pdp::Action::"context.incident.clear"`."""
    return await _clear(components, caller, request, None)


async def _clear(components: Components, caller: AdminCaller, request: Request,
                 incident_id: str | None) -> JSONResponse:
    live = _live(components)
    now = components.clock.now()
    state = live.store.view().state
    ending = [i for i in state.incidents
              if i.active(now) and (incident_id is None or i.id == incident_id)]
    if incident_id is not None and not ending:
        return problem(404, "Incident not found", f"no incident in force with id {incident_id}")
    if not ending:
        return JSONResponse({"cleared": [], "version": state.version})
    try:
        await _record(components, "context.incident.clear", caller,
                      {"incidents": [i.as_dict() for i in ending]}, request)
    except AuditUnavailable as e:
        return problem(503, "Not cleared", f"the decision log could not record it: {e}")
    try:
        cleared, version = await asyncio.to_thread(live.clear_incidents, now=now,
                                                   incident_id=incident_id)
    except ContextUnavailable as e:
        return _unavailable(e)
    return JSONResponse({"cleared": [i.as_dict() for i in cleared], "version": version})


@router.put("/risk", summary="Set the global or a principal's risk level", responses=_WRITE)
async def set_risk(
        body: RiskRequest, request: Request, components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("context.risk.set"))],
) -> JSONResponse:
    """Set the global risk level, or one principal's (replacing an automatic raise; level
    0 clears it), until `expires_at` / `ttl_s` (default `context.risk_ttl_s`).

    Needs `Pdp::Action::"context.risk.set"`; recorded as a `context.risk.set` admin event
    (a raise is applied first, a lowering is recorded first)."""
    live = _live(components)
    now = components.clock.now()
    level = int(body.level)
    expires_at = body.expires_at or (now + timedelta(seconds=body.ttl_s) if body.ttl_s else None)
    current = _current_level(live, body.principal, now)
    detail: dict[str, Any] = {"principal": body.principal, "level": level,
                              "level_name": risk_name(level), "previous_level": current,
                              "reason": body.reason,
                              "expires_at": expires_at.isoformat() if expires_at else None}

    async def apply() -> tuple[RiskEntry | None, str]:
        return await asyncio.to_thread(
            live.set_risk, level=level, reason=body.reason, now=now, principal=body.principal,
            set_by=caller.principal, expires_at=expires_at, authorized_by=caller.decision_id)

    try:
        if level >= current:
            entry, version = await apply()
            try:
                await _record(components, "context.risk.set", caller,
                              {**detail, "version": version}, request)
            except AuditUnavailable as e:
                return problem(503, "Risk level in force but not recorded",
                               f"the decision log could not record it: {e}")
        else:
            try:
                await _record(components, "context.risk.set", caller, detail, request)
            except AuditUnavailable as e:
                return problem(503, "Not lowered", f"the decision log could not record it: {e}")
            entry, version = await apply()
    except ValueError as e:
        return problem(422, "Invalid risk level", str(e),
                       [{"field": "body", "msg": str(e), "type": "value_error"}])
    except ContextUnavailable as e:
        return _unavailable(e)
    return JSONResponse({"principal": body.principal, "level": level,
                         "risk": entry.as_dict() if entry else None, "version": version})


def _current_level(live: LiveContext, principal: str | None, now: datetime) -> int:
    state = live.store.view().state
    if principal is None:
        entry: RiskEntry | None = state.global_risk
        return entry.level_at(now) if entry else live.configured.risk_level
    levels = [e.level_at(now) for e in (state.principal_risk.get(principal),
                                        state.auto_risk.get(principal)) if e is not None]
    return max(levels, default=0)


def install_context_handler(app: FastAPI) -> None:
    """An unreachable shared store (``ContextUnavailable``) anywhere is a 503, never a 500."""

    @app.exception_handler(ContextUnavailable)
    async def _unreachable(_: Request, exc: ContextUnavailable) -> JSONResponse:
        return _unavailable(exc)


__all__ = ["IncidentRequest", "RiskRequest", "install_context_handler", "router"]

