"""The OpenAPI document, made to say what the server does with bad input.

FastAPI documents the happy path and a 422 of its own shape; the PDP answers
every client error as RFC 9457 ``application/problem+json`` (``pdp.api.problems``),
from middleware (413, 431, a malformed ``X-Request-ID``), from body parsing (400,
422) and from authentication (401, 403). :func:`install_openapi` adds those to
every operation once, where they can happen, so that a client generator or a
fuzzer (schemathesis, in ``tests/api/test_schemathesis.py``) finds each answer
declared with its media type:

- every operation: 400 (malformed JSON, a malformed ``X-Request-ID``) and 431;
- with a body: 413 and 415 (not declared as JSON); with parameters or a body: 422;
  with path parameters: 404;
- behind ``admin_access`` or ``require_pep``: 401 and 403.

Ref: https://www.rfc-editor.org/rfc/rfc9457 and https://spec.openapis.org/oas/v3.1.0
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from pdp.api.models import Problem
from pdp.api.pep import require_pep
from pdp.api.problems import PROBLEM_JSON
from pdp.api.route_walk import api_routes

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"

_WHY = {
    400: "Malformed JSON body or request, or a malformed `X-Request-ID`",
    401: "The caller's credential is missing or was refused (a recorded decision)",
    403: "The caller may not do this (a recorded decision)",
    404: "Not found",
    413: "Request body too large",
    415: "The body is not declared as JSON (`content-type: application/json`)",
    422: "A field or parameter is missing or invalid",
    431: "Request headers too large",
}


def install_openapi(app: FastAPI) -> None:
    """Serve FastAPI's generated document with the problem answers declared."""
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generated()  # cached by FastAPI; declaring again changes nothing
        declare_problems(schema, list(api_routes(app.routes)))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def declare_problems(schema: dict[str, Any], routes: list[APIRoute]) -> None:
    """Add the problem answers to each operation of ``schema`` (in place)."""
    guarded = {(r.path_format, m.lower()) for r in routes for m in r.methods or ()
               if _is_guarded(r.dependant)}
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = \
        Problem.model_json_schema()
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            params = operation.get("parameters", [])
            statuses = {400, 431}
            if "requestBody" in operation:
                statuses |= {413, 415, 422}
            if params:
                statuses.add(422)
            if any(p.get("in") == "path" for p in params):
                statuses.add(404)
            if (path, method) in guarded:
                statuses |= {401, 403}
            for status in statuses:
                responses.setdefault(str(status), {"description": _WHY[status]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    _as_problem(int(status), response)


def _as_problem(status: int, response: dict[str, Any]) -> None:
    """A client error answered as problem details: declare that media type and schema."""
    content = response.get("content")
    if not content and status in _WHY:
        response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
        return
    if not content:
        return
    body = content.get("application/json")
    if body is not None and body.get("schema", {}).get("$ref") in (PROBLEM_REF["$ref"],
                                                                   _FASTAPI_422):
        del content["application/json"]
        content[PROBLEM_JSON] = {"schema": PROBLEM_REF}


def _is_guarded(dependant: Dependant) -> bool:
    return any(d.call is require_pep
               or getattr(d.call, "__qualname__", "").startswith("admin_access.")
               for d in _walk(dependant))


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _walk(sub)


__all__ = ["api_routes", "declare_problems", "install_openapi"]
