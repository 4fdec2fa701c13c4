"""AuthZEN Authorization API 1.0: the OpenID standard door to the same decisions.

Ref: https://openid.net/specs/authorization-api-1_0.html

- ``POST /access/v1/evaluation``: ``{subject, action, resource, context?}`` ->
  exactly ``{"decision": true|false}``.
- ``POST /access/v1/evaluations``: ``evaluations: [...]`` with the top-level
  ``subject``/``action``/``resource``/``context`` as defaults (an item's own
  entity replaces the default whole, except a missing ``type`` or ``id`` is
  taken from it); ``options.evaluations_semantic`` is ``execute_all``
  (default), ``deny_on_first_deny`` or ``permit_on_first_permit`` (stop after
  the first false / true; later items are not evaluated). Without
  ``evaluations`` (or with an empty array) it answers like ``/evaluation``.
- ``GET /.well-known/authzen-configuration``: the PDP metadata.

Reasons are opt-in (``options.include_reasons: true``, a PDP-specific option
that other PDPs ignore): the answer then carries ``context`` with the
decision id, reason codes, determining policies and the explanation.

Mapping to Cedar: ``subject.type``/``resource.type`` are Cedar entity types
(``App::Dataset``, ``Photo::User``), ``action.name`` is the action (its type,
e.g. ``Photo::Action``, is found in the schema), ``resource.properties`` are
the resource's attributes, ``action.properties`` are merged into the request
``context``. The subject is **verified** from ``subject.properties.token`` (a
JWT-SVID or an issuer's JWT; ``subject.properties.x509`` for a PEM chain) like
any credential: it is a ``Pdp::Workload`` and ``subject.id`` must be its
principal id (other properties are ignored: the credential is the only source
of a verified workload's attributes). A subject without a credential is
**asserted**: accepted only from a PEP listed in ``trusted_assertors`` (the
PEP is identified like on ``/v1/authorize``, by its TLS client certificate or
its own ``Authorization: Bearer`` token, see ``pdp.api.pep``); its
``properties`` become the entity's attributes and the decision is marked
``asserted`` in the log. From any other PEP it is denied (``identity.missing``).

Errors: 400 for malformed JSON, a content type other than ``application/json``,
an empty body, or a missing or mistyped field; inside a valid ``evaluations``
batch an item missing a field is ``decision: false`` for that item only, a
refusal recorded like any decision (``request.invalid``).
``X-Request-ID`` is echoed on every answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pdp.api.bearer import PepBearerDep
from pdp.api.deps import ComponentsDep, echoed_id, request_id, with_echoed_id
from pdp.api.door import DoorRequest, answer_routed
from pdp.api.fastjson import DecisionJSON
from pdp.api.jsonbody import StrictJSONRoute, parse_json
from pdp.api.models import NO_RESERVED_KEYS, Printable
from pdp.api.openapi import inline_schema, json_body
from pdp.api.pep import PepRefused, admit_pep, pep_name, refused_problem, require_pep
from pdp.api.problems import problem, reserved_context
from pdp.components import Components
from pdp.decision.model import (
    AssertedSubject,
    AuthorizeInput,
    Decision,
    DecisionError,
    ResourceRef,
)
from pdp.engine.pdp_schema import WORKLOAD_TYPE, reserved_key
from pdp.identity.model import BearerToken, Credential, X509Chain
from pdp.reasons import ReasonCode

router = APIRouter(tags=["authzen"], route_class=StrictJSONRoute)

EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
MAX_EVALUATIONS = 100
SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")

# Unknown members are ignored (the spec's forward compatibility); known ones are
# type-checked strictly: a number where a string belongs is a 400, never coerced.
_WIRE = ConfigDict(extra="ignore", strict=True)


class AzEntity(BaseModel):
    model_config = _WIRE

    type: str = Field(min_length=1, max_length=256, description="Cedar entity type.")
    id: Printable = Field(max_length=1024, description="Entity id, scoped to type (any string "
                                                      "Cedar accepts, even empty).")
    properties: dict[str, Any] | None = Field(default=None, description="Attributes.")


class AzSubject(AzEntity):
    """The subject. ``properties.token`` (or ``properties.x509``) carries its credential;
    without one the subject is asserted, which only trusted assertors may do."""

    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra={"examples": [
        {"type": WORKLOAD_TYPE, "id": "spiffe://example.org/services/etl",
         "properties": {"token": "eyJhbGciOi..."}}]})


class AzResource(AzEntity):
    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra={"examples": [
        {"type": "App::Dataset", "id": "sales-daily"}]})


class AzAction(BaseModel):
    model_config = _WIRE

    name: Printable = Field(max_length=256, description="Action id or Cedar uid.")
    properties: dict[str, Any] | None = Field(
        default=None, description="Merged into the request context.")


class AzOptions(BaseModel):
    model_config = _WIRE

    evaluations_semantic: Literal["execute_all", "deny_on_first_deny",
                                  "permit_on_first_permit"] = "execute_all"
    include_reasons: bool = Field(
        default=False, description="PDP-specific: add `context` with the decision's reasons.")


class AzEvaluation(BaseModel):
    """One access evaluation request (the AuthZEN 4-tuple)."""

    model_config = _WIRE

    subject: AzSubject
    action: AzAction
    resource: AzResource
    context: dict[str, Any] | None = Field(default=None, json_schema_extra=NO_RESERVED_KEYS)


class AzEvaluationRequest(AzEvaluation):
    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra={"examples": [{
        "subject": {"type": WORKLOAD_TYPE, "id": "spiffe://example.org/services/etl",
                    "properties": {"token": "eyJhbGciOi..."}},
        "action": {"name": "read"},
        "resource": {"type": "App::Dataset", "id": "sales-daily"}}]})

    options: AzOptions = Field(default_factory=AzOptions)


class AzPartialEntity(BaseModel):
    """A default subject or resource: any field may be left to the items."""

    model_config = _WIRE

    type: str | None = Field(default=None, min_length=1, max_length=256)
    id: Printable | None = Field(default=None, max_length=1024)
    properties: dict[str, Any] | None = None


class AzPartialAction(BaseModel):
    model_config = _WIRE

    name: Printable | None = Field(default=None, max_length=256)
    properties: dict[str, Any] | None = None


class AzDefaults(BaseModel):
    """The top level of an evaluations request: each field is a default, all optional."""

    model_config = _WIRE

    subject: AzPartialEntity | None = None
    action: AzPartialAction | None = None
    resource: AzPartialEntity | None = None
    context: dict[str, Any] | None = Field(default=None, json_schema_extra=NO_RESERVED_KEYS)
    options: AzOptions = Field(default_factory=AzOptions)
    evaluations: list[Any] | None = Field(default=None, max_length=MAX_EVALUATIONS)


class AzDecision(BaseModel):
    decision: bool
    context: dict[str, Any] | None = Field(
        default=None, description="Only with `options.include_reasons`.")


class AzDecisions(BaseModel):
    evaluations: list[AzDecision]


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON, wrong content type, empty body, or a "
                         "missing or mistyped field"},
    413: {"description": "Body too large"}}


class BadRequest(Exception):
    """The whole payload is unusable: answered 400."""

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail, self.errors = detail, errors


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why an evaluation cannot be asked: a 400 on its own, a recorded refusal in a batch."""

    message: str


@router.get("/.well-known/authzen-configuration", summary="AuthZEN PDP metadata")
async def configuration(request: Request) -> JSONResponse:
    """Where this PDP's AuthZEN endpoints are (`policy_decision_point` is this base URL)."""
    base = str(request.base_url).rstrip("/")
    return JSONResponse({"policy_decision_point": base,
                         "access_evaluation_endpoint": base + EVALUATION_PATH,
                         "access_evaluations_endpoint": base + EVALUATIONS_PATH},
                        headers=echoed_id(request_id(request)))


@router.post(EVALUATION_PATH, summary="AuthZEN access evaluation",
             responses={200: {"model": AzDecision, "description": "The decision"}, **_ERRORS},
             openapi_extra=json_body(AzEvaluationRequest, inline=True))
async def evaluation(request: Request, components: ComponentsDep,
                     bearer: PepBearerDep) -> Response:
    """May `subject` do `action` on `resource`? `{"decision": true|false}` (HTTP 200 either
    way); with `options.include_reasons`, also `context` with the decision's reasons."""
    del bearer  # declared for the OpenAPI document; the door reads it (DoorRequest.bearer)
    return await answer_routed(answer_evaluation, request, components)


async def answer_evaluation(request: DoorRequest, components: Components) -> Response:
    """``POST /access/v1/evaluation``, every outcome as a response: the one path of the
    route above and of the fast path (``pdp.api.fastpath``), like
    :func:`pdp.api.authorize.answer_authorize`. The calling PEP first (a refusal is
    recorded, 401/403), then the body (400), then the decision."""
    rid = request.request_id
    try:
        pep = await admit_pep(request, components, request.bearer())
    except PepRefused as e:
        return with_echoed_id(rid, refused_problem(e))
    try:
        body = await _json_object(request.content_type, request.body)
        return await _evaluate(components, body, pep, rid)
    except BadRequest as e:
        return _bad_request(rid, e)


def _evaluations_schema() -> dict[str, Any]:
    """``AzDefaults``, and the rule the handler applies: without ``evaluations`` the
    top level is one evaluation, so its ``subject``, ``action`` and ``resource`` are
    required and whole."""
    schema = inline_schema(AzDefaults)
    single = inline_schema(AzEvaluationRequest)
    schema["anyOf"] = [
        {"required": ["evaluations"],
         "properties": {"evaluations": {"type": "array", "minItems": 1}}},
        {"required": single["required"],
         "properties": {k: single["properties"][k] for k in single["required"]}},
    ]
    return schema


# Without `evaluations` the answer is one AzDecision.
@router.post(EVALUATIONS_PATH,
             responses={200: {"model": AzDecisions | AzDecision,
                              "description": "The decisions (one, without `evaluations`)"},
                        **_ERRORS},
             summary="AuthZEN access evaluations (batch)", dependencies=[Depends(require_pep)],
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": _evaluations_schema()}}}})
async def evaluations(request: Request, components: ComponentsDep) -> Response:
    """Several evaluations, with top-level defaults; `options.evaluations_semantic` picks
    `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`. Answers
    `{"evaluations": [{"decision": ...}, ...]}` in request order (shorter when a
    short-circuit semantic stopped early). Without `evaluations` it answers like
    `/access/v1/evaluation`."""
    pep, rid = pep_name(request), request_id(request)
    try:
        body = await _json_object(request.headers.get("content-type"), request.body)
        defaults = _validate(AzDefaults, body)
        if not defaults.evaluations:
            # The single evaluation, answered like /access/v1/evaluation.
            return await _evaluate(components,
                                   {k: v for k, v in body.items() if k != "evaluations"},
                                   pep, rid)
        if len(defaults.evaluations) > MAX_EVALUATIONS:
            raise BadRequest(f"at most {MAX_EVALUATIONS} evaluations per request")
        refused = reserved_context(defaults.context)
        if refused is not None:
            return with_echoed_id(rid, refused)
        items = [_prepare_item(components, body, item, pep, rid)
                 for item in defaults.evaluations]
    except BadRequest as e:
        return _bad_request(rid, e)
    options = defaults.options
    results = await _run(components, items, options.evaluations_semantic)
    return DecisionJSON(
        {"evaluations": [_answer(r, item, options.include_reasons)
                         for r, item in zip(results, items)]}, rid)


async def _evaluate(components: Components, body: dict[str, Any], pep: str | None,
                    rid: str | None) -> Response:
    """One evaluation, from its JSON object to its answer (``BadRequest`` for a body
    that cannot be used): ``/evaluation``, and ``/evaluations`` without ``evaluations``.
    ``pep``: the verified calling PEP (or None); ``rid``: the request's ``X-Request-ID``."""
    parsed = _validate(AzEvaluationRequest, body)
    refused = reserved_context(parsed.context)
    if refused is not None:
        return with_echoed_id(rid, refused)
    prepared = _prepared(components, parsed, pep, rid)
    decision = await components.service.authorize(prepared)
    return DecisionJSON(_answer(decision, prepared, parsed.options.include_reasons), rid)


async def _run(components: Components, items: list[AuthorizeInput],
               semantic: str) -> list[Decision]:
    """Decide the items under ``semantic``; short-circuits return a shorter list."""
    if semantic == "execute_all":
        return await components.service.authorize_batch(items)
    stop_on = semantic == "permit_on_first_permit"
    results: list[Decision] = []
    for item in items:
        result = await components.service.authorize(item)
        results.append(result)
        if result.allowed == stop_on:
            break
    return results


# --- parsing ------------------------------------------------------------------------


async def _json_object(content_type: str | None,
                       read: Callable[[], Awaitable[bytes]]) -> dict[str, Any]:
    """The body (``read``) as a JSON object, declared ``application/json`` by
    ``content_type`` (the request's header, None without one)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise BadRequest(f"content type must be application/json, not {media_type or 'none'!r}")
    raw = await read()
    if not raw.strip():
        raise BadRequest("the request body is empty")
    try:
        body = parse_json(raw)  # the same strict JSON as every other door (pdp.api.jsonbody)
    except ValueError as e:
        raise BadRequest(f"the body is not valid JSON: {getattr(e, 'msg', e)}") from e
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _validate(model: type[Any], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = [{"field": ".".join(str(p) for p in err["loc"]) or "body",
                   "msg": err["msg"], "type": err["type"]} for err in e.errors()]
        raise BadRequest("invalid field(s): " + ", ".join(x["field"] for x in errors),
                         errors) from e


def _merged(default: Any, own: Any) -> Any:
    """An item's entity replaces the default whole; a missing ``type``/``id`` comes from it."""
    if own is None:
        return default
    if isinstance(own, dict) and isinstance(default, dict):
        return {**{k: default[k] for k in ("type", "id") if k in default}, **own}
    return own


def _prepare_item(components: Components, top: dict[str, Any], item: Any, pep: str | None,
                  rid: str | None) -> AuthorizeInput:
    """One evaluation of a batch. One that cannot be asked is still a decision: refused
    (``decision: false``, ``request.invalid``) and recorded like any deny."""
    if not isinstance(item, dict):
        return _refused_item({}, "an evaluation must be a JSON object", pep, rid)
    merged = {key: _merged(top.get(key), item.get(key))
              for key in ("subject", "action", "resource", "context")}
    try:
        parsed = AzEvaluation.model_validate({k: v for k, v in merged.items() if v is not None})
    except ValidationError as e:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in e.errors())
        return _refused_item(merged, f"invalid or missing field(s): {fields}", pep, rid)
    reserved = reserved_key(parsed.context)
    prepared = (ItemError(f"context.{reserved} is filled in by the PDP and may not be sent")
                if reserved else _prepare(components, parsed, pep, rid))
    if isinstance(prepared, ItemError):
        return _refused_item(merged, prepared.message, pep, rid)
    return prepared


def _prepared(components: Components, ev: AzEvaluation, pep: str | None,
              rid: str | None) -> AuthorizeInput:
    """A well-formed evaluation, prepared; one whose subject or action cannot be used
    (a credential for a non-workload type, ``action.properties`` clashing with
    ``context``) is a refusal, answered ``false`` and recorded like in a batch."""
    prepared = _prepare(components, ev, pep, rid)
    if isinstance(prepared, ItemError):
        return _refused_item(ev.model_dump(), prepared.message, pep, rid)
    return prepared


def _refused_item(merged: Mapping[str, Any], message: str, pep: str | None,
                  rid: str | None) -> AuthorizeInput:
    """The refusal of an evaluation that cannot be asked, naming what it could read of it."""
    def text(entity: Any, key: str) -> str:
        value = entity.get(key) if isinstance(entity, dict) else None
        return value if isinstance(value, str) else ""

    return AuthorizeInput(
        credential=None, action=text(merged.get("action"), "name"),
        resource=ResourceRef(type=text(merged.get("resource"), "type"),
                             id=text(merged.get("resource"), "id")),
        request_id=rid, pep=pep or "authzen",
        refused=DecisionError(ReasonCode.REQUEST_INVALID, message))


def _prepare(components: Components, ev: AzEvaluation, pep: str | None,
             rid: str | None) -> AuthorizeInput | ItemError:
    """The AuthZEN 4-tuple as the PDP's ``AuthorizeInput`` (or why it cannot be), asked
    by the verified PEP ``pep`` (or None) with ``X-Request-ID`` ``rid``."""
    context = dict(ev.context or {})
    reserved = reserved_key(ev.action.properties)
    if reserved is not None:
        return ItemError(f"action.properties.{reserved} is reserved")
    for key, value in (ev.action.properties or {}).items():
        if key in context:
            return ItemError(f"action.properties.{key} is also in context")
        context[key] = value
    common: dict[str, Any] = {
        "action": ev.action.name,
        "resource": ResourceRef(type=ev.resource.type, id=ev.resource.id,
                                attrs=ev.resource.properties),
        "context": context, "request_id": rid,
    }
    properties = dict(ev.subject.properties or {})
    credential = _subject_credential(properties)
    if isinstance(credential, ItemError):
        return credential
    if credential is not None:
        if ev.subject.type != WORKLOAD_TYPE:
            return ItemError(f"a subject with a credential is a {WORKLOAD_TYPE}, "
                             f"not {ev.subject.type!r}")
        return AuthorizeInput(credential=credential, subject_id=ev.subject.id,
                              pep=pep or "authzen", **common)
    if pep is not None and is_trusted_assertor(pep, components.settings.trusted_assertors):
        return AuthorizeInput(credential=None, pep=pep, asserted=AssertedSubject(
            type=ev.subject.type, id=ev.subject.id, asserted_by=pep,
            properties=ev.subject.properties), **common)
    # No credential and no right to assert: the service denies it (identity.missing), logged.
    return AuthorizeInput(credential=None, subject_id=ev.subject.id, pep=pep or "authzen",
                          **common)


def _subject_credential(properties: dict[str, Any]) -> Credential | ItemError | None:
    token, pem = properties.get("token"), properties.get("x509")
    if token is not None and pem is not None:
        return ItemError("give subject.properties.token or subject.properties.x509, not both")
    if token is not None:
        if not isinstance(token, str) or not token:
            return ItemError("subject.properties.token must be a non-empty string")
        return BearerToken(token)
    if pem is not None:
        if not isinstance(pem, str) or not pem:
            return ItemError("subject.properties.x509 must be a PEM string")
        return X509Chain(pem)
    return None


def is_trusted_assertor(pep: str, trusted: list[str]) -> bool:
    """``pep`` is listed exactly, or under a pattern ending in ``/*`` (a path prefix)."""
    return any(pep == t or (t.endswith("/*") and pep.startswith(t[:-1])) for t in trusted)


# --- answers ------------------------------------------------------------------------


def _answer(decision: Decision, request: AuthorizeInput, reasons: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"decision": decision.allowed}
    if reasons:
        context: dict[str, Any] = {
            "id": decision.decision_id,
            "decision_id": decision.decision_id,
            "reason_codes": [str(c) for c in decision.reason_codes],
            "reasons": [r.as_dict() for r in decision.reasons],
            "reason_admin": {"en": decision.explanation},
        }
        if request.asserted is not None:
            context["asserted"] = True
        if request.refused is not None:  # a batch item that could not be asked
            context["error"] = {"status": 400, "message": request.refused.message}
        out["context"] = context
    return out


def _bad_request(rid: str | None, error: BadRequest) -> Response:
    return with_echoed_id(rid, problem(400, "Bad request", error.detail, error.errors))
