"""Client errors as RFC 9457 problem details, each naming the field at fault."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pdp.api.route_walk import api_routes  # the routes inside included routers too
from pdp.engine.pdp_schema import reserved_key

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None,
            errors: list[dict[str, Any]] | None = None,
            headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def invalid_body(errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    """The answer to a body that cannot be used, from pydantic's ``errors()`` (FastAPI's
    ``RequestValidationError``, or a model's own ``model_validate_json``): **400** when
    the bytes are not JSON at all, **422** when the JSON is not what the model takes,
    each error naming its field."""
    fields = [_field_error(e) for e in errors]
    if any(e["type"] in ("json_invalid", "json_type") for e in fields):
        return problem(400, "Malformed JSON body", fields[0]["msg"], fields)
    names = ", ".join(e["field"] for e in fields)
    return problem(422, "Invalid request", f"invalid field(s): {names}", fields)


def reserved_context(context: Mapping[str, Any] | None,
                     where: str = "context") -> JSONResponse | None:
    """The 400 for a context holding a key only the PDP fills in (``live``,
    ``credential``: :func:`pdp.engine.pdp_schema.reserved_key`), or None when it holds
    none; ``where`` is the context's place in the body (``items.2.context``). Every
    door answers it alike."""
    key = reserved_key(context)
    if key is None:
        return None
    return problem(400, "Reserved context attribute",
                   f"{where}.{key} is filled in by the PDP and may not be sent",
                   [{"field": f"{where}.{key}", "msg": "reserved", "type": "reserved"}])


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_body(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Keep the exception's headers: a 405 must say `Allow` (RFC 9110 §15.5.6), and
        # list every method of the path, not only those of the first route that has it.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["allow"] = ", ".join(allowed_methods(request))
        return problem(exc.status_code, str(exc.detail), headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this request's path (for ``Allow``)."""
    methods: set[str] = set()
    for route in api_routes(request.app.routes):
        if route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


def _field_error(error: Any) -> dict[str, Any]:
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    msg = error.get("msg", "")
    why = (error.get("ctx") or {}).get("error")
    if error.get("type") == "json_invalid":
        # Say what is wrong with the bytes (pdp.api.jsonbody), in the same words whether
        # FastAPI parsed them ("JSON decode error", at a character offset) or pydantic did.
        return {"field": "body", "msg": f"Invalid JSON: {why}" if why else msg,
                "type": "json_invalid"}
    return {"field": ".".join(loc) or "body", "msg": msg,
            "type": error.get("type", "")}
