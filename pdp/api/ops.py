"""Operations: liveness, readiness, metrics, bundle reload."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from pdp.api.admin_auth import AdminCaller, admin_access
from pdp.api.deps import ComponentsDep
from pdp.api.jsonbody import StrictJSONRoute
from pdp.api.models import Problem
from pdp.api.problems import problem
from pdp.audit.chain.spool import SpoolingLog

router = APIRouter(tags=["ops"], route_class=StrictJSONRoute)


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness",
            responses={503: {"description": "Not ready (`not_ready_because` says why): no "
                                            "valid bundle is loaded, the decision log cannot "
                                            "commit, a trust source is past its maximum age, or "
                                            "the current revocations are unknown; the same body",
                             "content": {"application/json": {}}}})
async def readyz(components: ComponentsDep) -> JSONResponse:
    """Ready when a valid bundle serves decisions and the decision log commits. If the
    last reload was refused, the old bundle keeps serving and `status` is `degraded`,
    with the problems.

    Not ready (503, `status: "unavailable"`, each cause in `not_ready_because`) while
    this replica would deny every request: no bundle; a decision log that cannot
    commit (its last attempt failed, or a commit has run past `[audit]
    commit_timeout_s`; `degraded` instead while a spool takes the records); a trust
    source past its maximum age; revocations it cannot confirm (`revocations.known`).
    A load balancer should send its traffic elsewhere until the cause clears."""
    bundle = components.bundles.current
    body: dict[str, Any] = {"status": "ready",
                            "bundle": bundle.version.as_dict() if bundle else None}
    not_ready: list[str] = []
    failure = components.bundles.last_error
    if failure is not None:
        body["status"] = "degraded"
        body["bundle_reload_error"] = {"at": failure.at.isoformat(),
                                       "problems": list(failure.problems)}
    # Trust sources (bundles, JWKS): a failed read keeps the last good copy: degraded.
    sources = [s.as_dict() for s in components.verifier.source_statuses(components.clock.now())]
    body["identity"] = {"sources": sources}
    if any(not s["ok"] for s in sources):
        body["status"] = "degraded"
    # ...until it is past its maximum age: it verifies nothing, so not ready.
    not_ready += [f"trust source {s['source']} is past its maximum age"
                  for s in sources if s["stale"]]
    # Live context: an unreachable store or stale values (defaults in use): degraded.
    context_health = getattr(components.live, "health", None)
    if context_health is not None:
        body["context"] = context_health()
        if body["context"]["status"] != "ok":
            body["status"] = "degraded"
    # Revocations that cannot be confirmed with their durable store: every credential
    # is refused (identity.revocation_unknown).
    revocations_health = getattr(components.revocations, "health", None)
    if revocations_health is not None:
        body["revocations"] = revocations_health()
        if not body["revocations"]["known"]:
            not_ready.append("the current revocations are unknown")
    if _log_cannot_commit(components.log, body):
        not_ready.append("the decision log cannot commit")
    if bundle is None:
        not_ready.insert(0, "no valid bundle is loaded")
    if not_ready:
        body["status"] = "unavailable"
        body["not_ready_because"] = not_ready
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


def _log_cannot_commit(log: object, body: dict[str, Any]) -> bool:
    """Report the decision log's commit health in ``body["audit"]``; True when decisions
    cannot be recorded at all (no spool to take them)."""
    commit_health = getattr(log, "commit_health", None)
    if commit_health is None:  # in memory: always commits
        return False
    health = commit_health()
    body["audit"] = health.as_dict()
    if health.ok:
        return False
    if isinstance(log, SpoolingLog):  # records are durable in the spool meanwhile
        body["audit"]["spool"] = str(log.path)
        body["status"] = "degraded"
        return False
    return True


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(components: ComponentsDep) -> Response:
    return Response(components.metrics.exposition(),  # summed over workers (--workers N)
                    media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/policies/reload", tags=["policies"], summary="Reload the policy bundle",
             responses={409: {"model": Problem, "description": "Refused; the old bundle serves"}})
async def reload_policies(
        components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("policy.reload"))],
) -> JSONResponse:
    """Load the bundle directory again. A bundle with problems is refused and the
    previous one keeps serving (409, with every problem listed).

    Needs `Pdp::Action::"policy.reload"` (bearer credential); recorded as an
    administrative event."""
    outcome = await asyncio.to_thread(components.bundles.reload, caller.principal,
                                      caller.decision_id)
    if not outcome.ok:
        return problem(409, "Bundle refused",
                       f"still serving {outcome.version}",
                       [{"problem": p} for p in outcome.problems])
    return JSONResponse({"ok": True, "changed": outcome.changed, "version": outcome.version})
