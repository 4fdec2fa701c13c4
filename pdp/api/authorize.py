"""``/v1/authorize``: the decision endpoints, and the one path a decision request takes.

:func:`answer_authorize` is ``POST /v1/authorize`` from the request to the answer,
in this order:

1. the calling PEP (:func:`pdp.api.pep.admit_pep`: allowlist; a refusal is a
   recorded decision, answered 401/403);
2. the body: ``application/json`` (else 415), strict JSON (else 400), an
   ``AuthorizeRequest`` (else 422), parsed in one step by pydantic-core;
3. no reserved context key (:func:`pdp.api.problems.reserved_context`, 400);
4. the decision (``DecisionService.authorize``: verify, live context, decide, record);
5. the answer: the decision as JSON (orjson), ``X-Request-ID`` echoed.

It reads the request as a :class:`pdp.api.door.DoorRequest` (three headers scanned
once, the body on demand), returns every outcome as a response and raises no client
error, so there is nothing for FastAPI's exception handlers to render differently.
Two ways lead to it and cannot answer differently: the FastAPI route below, which
documents the operation in OpenAPI and serves when the fast path is not installed,
and :class:`pdp.api.fastpath.FastPath`, which calls it before FastAPI's routing and
dependency resolution (their cost per request is about uvicorn's own).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from pdp.api.bearer import PepBearerDep
from pdp.api.deps import ComponentsDep, echoed_id, request_id, with_echoed_id
from pdp.api.door import DoorRequest, answer_routed
from pdp.api.fastjson import DecisionJSON, FastJSONResponse
from pdp.api.jsonbody import StrictJSONRoute, refused_media_type
from pdp.api.models import (
    AuthorizeRequest,
    AuthorizeResponse,
    BatchRequest,
    BatchResponse,
    Problem,
    to_input,
)
from pdp.api.openapi import json_body
from pdp.api.pep import PepRefused, admit_pep, pep_name, refused_problem, require_pep
from pdp.api.problems import invalid_body, reserved_context
from pdp.components import Components

router = APIRouter(prefix="/v1", tags=["decisions"], route_class=StrictJSONRoute)

AUTHORIZE_PATH = "/v1/authorize"

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed JSON or a reserved context key"},
    413: {"model": Problem, "description": "Body too large"},
    422: {"model": Problem, "description": "A field is missing or has the wrong type"}}


@router.post("/authorize", summary="Decide one request",
             responses={200: {"model": AuthorizeResponse, "description": "The decision"},
                        **_ERRORS,
                        415: {"model": Problem,
                              "description": "The body is not `application/json`"}},
             openapi_extra=json_body(AuthorizeRequest))
async def authorize(request: Request, components: ComponentsDep,
                    bearer: PepBearerDep) -> Response:
    """Verify the subject's credential, add live context, evaluate the bundle's Cedar
    policies, record the decision durably, and answer.

    A **deny is HTTP 200** with `decision: "deny"`, reason codes and an explanation;
    only a malformed request is a 4xx. `context.live` and `context.credential` are
    filled in by the PDP and may not be sent (400).
    """
    del bearer  # declared for the OpenAPI document; the door reads it (DoorRequest.bearer)
    return await answer_routed(answer_authorize, request, components)


async def answer_authorize(request: DoorRequest, components: Components) -> Response:
    """``POST /v1/authorize``, every outcome as a response (see the module docstring).

    The PEP's credential is ``request``'s ``Authorization: Bearer`` header, read as
    :data:`pdp.api.bearer.pep_bearer` reads it (never the subject's).
    """
    rid = request.request_id  # read once: the record keeps it, every answer echoes it
    try:
        pep = await admit_pep(request, components, request.bearer())
    except PepRefused as e:  # recorded, with its decision id in the answer
        return with_echoed_id(rid, refused_problem(e))
    content_type = request.content_type
    # the same 415 as every JSON door
    unsupported = await refused_media_type(content_type, request.body)
    if unsupported is not None:
        return with_echoed_id(rid, unsupported)
    raw = await request.body()
    if not raw and content_type is None:  # no body at all, as FastAPI says
        return with_echoed_id(rid, invalid_body(
            [{"type": "missing", "loc": ("body",), "msg": "Field required"}]))
    try:  # bytes to model in one step: the strict JSON of pdp.api.jsonbody, then the fields
        body = AuthorizeRequest.model_validate_json(raw)
    except ValidationError as e:
        return with_echoed_id(rid, invalid_body(e.errors(include_url=False)))
    refused = reserved_context(body.context)
    if refused is not None:
        return with_echoed_id(rid, refused)
    decision = await components.service.authorize(body.to_input(request_id=rid, pep=pep))
    return DecisionJSON(decision.as_dict(), rid)


@router.post("/authorize/batch", summary="Decide several requests for one subject",
             responses={200: {"model": BatchResponse, "description": "One decision per item"},
                        **_ERRORS},
             dependencies=[Depends(require_pep)])  # the calling PEP: allowlist, `pep` in the record
async def authorize_batch(body: BatchRequest, request: Request,
                          components: ComponentsDep) -> Response:
    """Up to 100 items for one subject; each item gets its own decision and record."""
    for i, item in enumerate(body.items):
        refused = reserved_context(item.context, f"items.{i}.context")
        if refused is not None:
            return with_echoed_id(request_id(request), refused)
    rid = request_id(request)
    decisions = await components.service.authorize_batch(
        [to_input(body.subject, item, request_id=rid, pep=pep_name(request))
         for item in body.items])
    return FastJSONResponse({"results": [d.as_dict() for d in decisions]}, headers=echoed_id(rid))


__all__ = ["AUTHORIZE_PATH", "answer_authorize", "authorize", "authorize_batch", "pep_name",
           "router"]
