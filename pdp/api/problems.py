"""Client errors as RFC 9457 problem details, each naming the field at fault."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pdp.api.route_walk import api_routes  # the routes inside included routers too

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


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_error(e) for e in exc.errors()]
        # Malformed JSON is a 400 (the body is not JSON at all); a schema mismatch is a 422.
        if any(e["type"] in ("json_invalid", "json_type") for e in errors):
            return problem(400, "Malformed JSON body", errors[0]["msg"], errors)
        fields = ", ".join(e["field"] for e in errors)
        return problem(422, "Invalid request", f"invalid field(s): {fields}", errors)

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
    if error.get("type") == "json_invalid" and why:
        msg = f"{msg}: {why}"  # say what is wrong with the bytes (pdp.api.jsonbody)
    return {"field": ".".join(loc) or "body", "msg": msg,
            "type": error.get("type", "")}
