"""``/v1/authorize``: the decision endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pdp.api.deps import ComponentsDep, request_id
from pdp.api.fastjson import FastJSONResponse
from pdp.api.jsonbody import StrictJSONRoute
from pdp.api.models import (
    AuthorizeRequest,
    AuthorizeResponse,
    BatchRequest,
    BatchResponse,
    Problem,
    to_input,
)
from pdp.api.pep import PepRefused, check_pep, pep_name, require_pep
from pdp.api.problems import problem
from pdp.engine.pdp_schema import RESERVED_CONTEXT_ATTRS

router = APIRouter(prefix="/v1", tags=["decisions"], route_class=StrictJSONRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed JSON or a reserved context key"},
    413: {"model": Problem, "description": "Body too large"},
    422: {"model": Problem, "description": "A field is missing or has the wrong type"}}


@router.post("/authorize", response_model=AuthorizeResponse, responses=_ERRORS,
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


@router.post("/authorize/batch", response_model=BatchResponse, responses=_ERRORS,
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
        [to_input(body.subject, item, request_id=rid, pep=pep_name(request))
         for item in body.items])
    return FastJSONResponse({"results": [d.as_dict() for d in decisions]}, headers=_echo(request))


def _reserved_key(context: dict[str, object]) -> str | None:
    return next((k for k in RESERVED_CONTEXT_ATTRS if k in context), None)


def _reserved_problem(key: str, where: str) -> JSONResponse:
    return problem(400, "Reserved context attribute",
                   f"{where}.{key} is filled in by the PDP and may not be sent",
                   [{"field": f"{where}.{key}", "msg": "reserved", "type": "reserved"}])


def _echo(request: Request) -> dict[str, str]:
    rid = request_id(request)
    return {"x-request-id": rid} if rid else {}


class AuthorizeFastPath:
    """ASGI middleware: ``POST /v1/authorize`` decided without FastAPI's routing and
    dependency resolution, which cost about as much per request as uvicorn itself.

    It takes only the common case, with the route's own parts: a JSON body that
    ``AuthorizeRequest`` accepts, no reserved context key, the PEP admitted by
    :func:`check_pep`; the answer is the route's. Anything else (a malformed body,
    a refused PEP, a reserved key) goes on to the FastAPI route with the body
    replayed, so every error keeps its exact answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or scope["path"] != "/v1/authorize"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:  # the whole body (BodySizeLimit, outside, bounds it)
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        if messages[-1]["type"] == "http.request" and await self._answer(scope, body, send):
            return
        pending = list(messages)

        async def replay() -> Message:
            return pending.pop(0) if pending else await receive()

        await self.app(scope, replay, send)

    async def _answer(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Decide and answer; False (nothing sent) when the route should handle it."""
        request = Request(scope)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != \
                "application/json":
            return False
        try:
            parsed = AuthorizeRequest.model_validate_json(body)
        except ValidationError:
            return False
        if _reserved_key(parsed.context):
            return False
        components = request.app.state.components
        try:
            check_pep(request, components)
        except PepRefused:  # the route refuses it, and records the refusal once
            return False
        decision = await components.service.authorize(
            parsed.to_input(request_id=request_id(request), pep=pep_name(request)))
        await FastJSONResponse(decision.as_dict(), headers=_echo(request))(scope, _no_body, send)
        return True


async def _no_body() -> Message:  # a response never reads the request again
    return {"type": "http.disconnect"}
