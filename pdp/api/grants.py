"""``/v1/grants``: time-boxed, task-scoped grants (a bundle template linked until an expiry).

Creating, listing and revoking grants are admin actions authorized by the
bundle's own policies (``policy.grant``, ``policy.grants.read``,
``policy.ungrant``), and each change is an administrative event in the log.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pdp.api.admin_auth import AdminCaller, admin_access
from pdp.api.deps import ComponentsDep
from pdp.api.jsonbody import StrictJSONRoute
from pdp.api.models import EntityRef, Problem
from pdp.api.problems import problem
from pdp.decision.decide import new_decision_id
from pdp.engine.grants import Grant, GrantError, check_grant

router = APIRouter(prefix="/v1/grants", tags=["grants"], route_class=StrictJSONRoute)
MAX_GRANT_TTL_S = 7 * 24 * 3600


class GrantRequest(BaseModel):
    """Link ``template`` for ``principal`` on ``resource`` for ``ttl_s`` seconds, for ``task``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "template": "grant.dataset.read",
        "principal": "spiffe://example.org/agents/reporter",
        "resource": {"type": "App::Dataset", "id": "ledger"},
        "ttl_s": 900, "task": "T-123",
    }]})

    template: str = Field(min_length=1,
                          description="The @id of a template with ?principal and ?resource.")
    principal: str = Field(min_length=1, max_length=2048, description="Workload id (SPIFFE ID).")
    resource: EntityRef
    ttl_s: int = Field(gt=0, le=MAX_GRANT_TTL_S,
                       description="Lifetime in seconds (at most 7 days).")
    task: str = Field(min_length=1, max_length=256,
                      description="The task the grant is for, e.g. a ticket.")


@router.post("", status_code=201, responses={404: {"model": Problem}, 422: {"model": Problem}},
             summary="Create a task grant")
async def create_grant(body: GrantRequest, components: ComponentsDep,
                       caller: Annotated[AdminCaller, Depends(admin_access("policy.grant"))],
) -> JSONResponse:
    bundle = components.bundles.current
    if bundle is None:  # fail closed: no template can be checked without a bundle
        return problem(503, "No policy bundle", "no valid bundle is loaded")
    try:
        check_grant(bundle, body.template)
    except GrantError as e:
        return problem(422, "Unknown template", str(e))
    now = components.clock.now()
    grant = Grant(id=new_decision_id(), template=body.template, principal=body.principal,
                  resource_type=body.resource.type, resource_id=body.resource.id,
                  expires_at=now + timedelta(seconds=body.ttl_s), task=body.task,
                  created_by=caller.principal, created_at=now)
    await asyncio.to_thread(components.grants.add, grant)  # a durable commit
    await components.service.record_admin_event(
        "policy.grant", principal=caller.principal, authorized_by=caller.decision_id,
        detail=grant.as_dict())
    return JSONResponse(grant.as_dict(), status_code=201)


@router.get("", summary="List task grants")
async def list_grants(
        components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("policy.grants.read"))],
        include_inactive: bool = False) -> dict[str, Any]:
    """Active grants (or all, with `include_inactive=true`), each with `active`."""
    now = components.clock.now()
    grants = [g for g in components.grants.all() if include_inactive or g.active(now)]
    return {"grants": [{**g.as_dict(), "active": g.active(now)} for g in grants]}


@router.delete("/{grant_id}", responses={404: {"model": Problem}}, summary="Revoke a task grant")
async def revoke_grant(grant_id: str, components: ComponentsDep,
                       caller: Annotated[AdminCaller, Depends(admin_access("policy.ungrant"))],
) -> JSONResponse:
    grant = await asyncio.to_thread(components.grants.revoke, grant_id, components.clock.now())
    if grant is None:
        return problem(404, "Grant not found", f"no grant {grant_id}")
    await components.service.record_admin_event(
        "policy.ungrant", principal=caller.principal, authorized_by=caller.decision_id,
        detail=grant.as_dict())
    return JSONResponse(grant.as_dict())
