"""``/v1/authorize``: the decision endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from pdp.api.deps import ComponentsDep, request_id
from pdp.api.fastjson import FastJSONResponse
from pdp.api.pep import require_pep
from pdp.api.models import AuthorizeRequest, AuthorizeResponse, BatchRequest, BatchResponse, Problem, to_input
from pdp.api.problems import problem
from pdp.engine.pdp_schema import RESERVED_CONTEXT_ATTRS

router = APIRouter(prefix="/v1", tags=["decisions"])

_ERRORS = {400: {"model": Problem, "description": "Malformed JSON or a reserved context key"},
           413: {"model": Problem, "description": "Body too large"},
           422: {"model": Problem, "description": "A field is missing or has the wrong type"}}


@router.post("/authorize", response_model=AuthorizeResponse, responses=_ERRORS,  # type: ignore[arg-type]
             summary="Decide one request",
             dependencies=[Depends(require_pep)])  # the calling PEP: allowlist, `pep` in the record
async def authorize(body: AuthorizeRequest, request: Request,
                    components: ComponentsDep) -> JSONResponse:
    """Verify the subject's credential, add live context, evaluate the bundle's Cedar
    policies, record the decision durably, and answer.

    A **deny is HTTP 200** with `decision: "deny"`, reason codes and an explanation;
    only a malformed request is a 4xx. `context.live` and `context.credential` are
    filled in by the PDP and may not be sent (400).
    """
    reserved = _reserved_key(body.context)
    if reserved:
        return _reserved_problem(reserved, "context")
    decision = await components.service.authorize(
        body.to_input(request_id=request_id(request), pep=pep_name(request)))
    return FastJSONResponse(decision.as_dict(), headers=_echo(request))


@router.post("/authorize/batch", response_model=BatchResponse, responses=_ERRORS,  # type: ignore[arg-type]
             summary="Decide several requests for one subject",
             dependencies=[Depends(require_pep)])
async def authorize_batch(body: BatchRequest, request: Request,
                          components: ComponentsDep) -> JSONResponse:
    """Up to 100 items for one subject; each item gets its own decision and record."""
    for i, item in enumerate(body.items):
        reserved = _reserved_key(item.context)
        if reserved:
            return _reserved_problem(reserved, f"items.{i}.context")
    rid = request_id(request)
    decisions = await components.service.authorize_batch(
        [to_input(body.subject, item, request_id=rid, pep=pep_name(request)) for item in body.items])
    return FastJSONResponse({"results": [d.as_dict() for d in decisions]}, headers=_echo(request))


def _reserved_key(context: dict[str, object]) -> str | None:
    return next((k for k in RESERVED_CONTEXT_ATTRS if k in context), None)


def _reserved_problem(key: str, where: str) -> JSONResponse:
    return problem(400, "Reserved context attribute",
                   f"{where}.{key} is filled in by the PDP and may not be sent",
                   [{"field": f"{where}.{key}", "msg": "reserved", "type": "reserved"}])


def pep_name(request: Request) -> str | None:
    """The authenticated PEP that asked, for the record: ``request.state.pep`` when PEP
    authentication set it (a name, or an object with ``name``/``id``), else None."""
    pep = getattr(request.state, "pep", None)
    if pep is None or isinstance(pep, str):
        return pep
    name = getattr(pep, "name", None) or getattr(pep, "id", None)
    return str(name) if name is not None else str(pep)


def _echo(request: Request) -> dict[str, str]:
    rid = request_id(request)
    return {"x-request-id": rid} if rid else {}
