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
from pydantic import BaseModel

from pdp.api.bearer import OPTIONAL_SCHEMES, pep_bearer
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
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    _add_body_models(schemas)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            _optional_security(operation)
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


def _optional_security(operation: dict[str, Any]) -> None:
    """An operation whose bearer schemes are all optional (``OPTIONAL_SCHEMES``) may be
    called without: OpenAPI says so with an empty requirement (``{}``) among them."""
    security = operation.get("security")
    if security and {} not in security and all(
            set(requirement) <= OPTIONAL_SCHEMES for requirement in security):
        security.append({})


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


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its ``$defs`` inlined (to build a schema of one's own
    from a model's, as AuthZEN's evaluations body does)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_BODY_MODELS: dict[str, type[BaseModel]] = {}
"""The request bodies :func:`json_body` declared, by name: their schemas go into the
document's components (FastAPI adds only the models of the parameters it parses)."""


def json_body(model: type[BaseModel], *, inline: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for an operation that reads its own body: a required JSON
    body of ``model``, referenced from the document's components like FastAPI's own
    (``inline``: written out in the operation, as AuthZEN clients read it).
    Ref: https://fastapi.tiangolo.com/advanced/path-operation-advanced-configuration/"""
    if inline:
        schema = inline_schema(model)
    else:
        _BODY_MODELS[model.__name__] = model
        schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema}}}}


def _add_body_models(schemas: dict[str, Any]) -> None:
    for name, model in _BODY_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(sub, definition)  # FastAPI's, where a route has it already
        schemas.setdefault(name, schema)


def _is_guarded(dependant: Dependant) -> bool:
    # The PEP's bearer scheme marks an operation that checks its PEP itself (the
    # shared decision paths: pdp.api.fastpath); require_pep and admin_access do it as
    # dependencies.
    return any(d.call is require_pep or d.call is pep_bearer
               or getattr(d.call, "__qualname__", "").startswith("admin_access.")
               for d in _walk(dependant))


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _walk(sub)


__all__ = ["api_routes", "declare_problems", "inline_schema", "install_openapi", "json_body"]
