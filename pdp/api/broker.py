"""The credential broker over HTTP: RFC 8693 token exchange, its keys and metadata, tasks.

- ``POST /v1/token``: ``application/x-www-form-urlencoded``,
  ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``. Success is the
  RFC 8693 §2.2.1 answer; a refusal is an RFC 6749 §5.2 error (``invalid_request``,
  ``invalid_target``, ``invalid_scope``, ``access_denied``) with the recorded
  ``decision_id``, its ``reason_codes`` and the sentence explaining it.
- ``GET /v1/broker/jwks.json``: the broker's public keys (current and in overlap).
- ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata.
- ``GET /v1/tasks``, ``POST /v1/tasks/{id}/complete``: tasks, authorized by the bundle
  (``Pdp::Action::"broker.tasks.read"`` / ``"broker.task.complete"`` on
  ``Pdp::Admin::"broker"``); a task is completed by its owner only.

The task rides in ``authorization_details`` (RFC 9396), a JSON array with one
object of type ``urn:pdp:task``: ``{"type": "urn:pdp:task", "task_id": "T-1",
"purpose": "...", "lifetime_s": 300}``. RFC 9396 is the standard place for
"what this credential is for" beyond scopes, and it keeps our parameters out of
the RFC 8693 namespace.
Refs: https://www.rfc-editor.org/rfc/rfc8693, https://www.rfc-editor.org/rfc/rfc9396,
https://www.rfc-editor.org/rfc/rfc8414
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from context.store import ContextUnavailable
from pdp.api.admin_auth import AdminCaller, admin_access
from pdp.api.deps import ComponentsDep, request_id
from pdp.api.forwarded import forwarded_credential
from pdp.api.models import Problem
from pdp.api.pep import tls_client_chain
from pdp.api.problems import PROBLEM_JSON, problem
from pdp.audit.errors import AuditUnavailable
from pdp.broker import Broker, Issued
from pdp.broker.issuance import ExchangeAsk
from pdp.broker.minting import TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT
from pdp.components import Components
from pdp.identity.errors import IdentityError
from pdp.identity.model import BearerToken, Credential

router = APIRouter(tags=["broker"])

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
TASK_DETAILS_TYPE = "urn:pdp:task"
JWT_TOKEN_TYPES = frozenset({TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS,
                             "urn:ietf:params:oauth:token-type:id_token"})
CONNECTION_TOKEN_TYPE = "urn:pdp:token-type:client-certificate"
"""``subject_token_type`` naming the X.509-SVID of the mTLS connection, or the certificate a
trusted proxy forwarded (``subject_token`` is then ignored: send ``-``)."""
MAX_TOKEN_CHARS = 16384
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


class OAuthError(BaseModel):
    """An RFC 6749 §5.2 error answer; a refusal after verification adds the decision."""

    error: str = Field(description="invalid_request, invalid_target, invalid_scope, "
                                   "access_denied, unsupported_grant_type, "
                                   "temporarily_unavailable")
    error_description: str = Field(description="The sentence explaining it.")
    decision_id: str | None = Field(default=None, description="The recorded decision.")
    reason_codes: list[str] | None = Field(default=None, description="Which rule refused.")


_OAUTH_OR_PROBLEM: dict[str, Any] = {
    "model": OAuthError,
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


class ExchangeError(Exception):
    """A malformed exchange request, answered before any decision (nothing recorded)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


def _oauth_error(status: int, error: str, description: str,
                 extra: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description, **(extra or {})},
                        status_code=status, headers=NO_STORE)


_STATUS = {"access_denied": 403, "temporarily_unavailable": 503}


@router.post(
    "/v1/token", summary="Exchange a credential for a task-scoped one (RFC 8693)",
    responses={400: {**_OAUTH_OR_PROBLEM,
                     "description": "RFC 6749 error: invalid_request, invalid_target, "
                                    "invalid_scope, unsupported_grant_type (or a malformed "
                                    "X-Request-ID: problem details)"},
               403: {"model": OAuthError,
                     "description": "access_denied: the bundle's policies refused"},
               404: {"model": Problem},
               503: {"model": OAuthError, "description": "temporarily_unavailable"}})
async def token_exchange(
        request: Request, components: ComponentsDep,
        grant_type: Annotated[str, Form(min_length=1, description=f"Must be `{GRANT_TYPE}`.")],
        subject_token: Annotated[str, Form(
            min_length=1, max_length=MAX_TOKEN_CHARS,
            description="The caller's own verified credential.")],
        subject_token_type: Annotated[str, Form(
            min_length=1, description=f"A JWT token type URN, or `{CONNECTION_TOKEN_TYPE}` "
                                      "for the connection's X.509-SVID.")],
        actor_token: Annotated[str | None, Form(
            max_length=MAX_TOKEN_CHARS,
            description="Delegation: the acting workload's own credential.")] = None,
        actor_token_type: Annotated[str | None, Form()] = None,
        audience: Annotated[str | None, Form(
            max_length=2048, description="The service the credential is for (one).")] = None,
        resource: Annotated[str | None, Form(
            max_length=2048, description="RFC 8707 alternative to `audience`.")] = None,
        scope: Annotated[str | None, Form(
            max_length=4096, description="Space-separated; omitted: at most the subject's.")
        ] = None,
        requested_token_type: Annotated[str | None, Form()] = None,
        authorization_details: Annotated[str | None, Form(
            max_length=4096, description=f"JSON: [{{type: {TASK_DETAILS_TYPE}, task_id, "
                                         "purpose, lifetime_s}]")] = None,
) -> JSONResponse:
    """Issue a credential for one task, audience and scope set, after the bundle's policies
    permit ``Pdp::Action::"credential.issue"`` (docs/agents.md)."""
    broker = _broker(components)
    if broker is None:
        return problem(404, "No credential broker",
                       "the broker has no signing key: set [broker] key_file (docs/agents.md)")
    try:
        connection = _connection_certificate(request, components, subject_token_type)
        ask, subject, actor = _parse(grant_type, subject_token, subject_token_type,
                                     actor_token, actor_token_type, audience, resource, scope,
                                     requested_token_type, authorization_details,
                                     default_audience=components.settings.audience)
    except ExchangeError as e:
        return _oauth_error(400, e.error, str(e))
    outcome = await broker.exchange(subject=connection or subject, actor=actor, ask=ask,
                                    request_id=request_id(request))
    if isinstance(outcome, Issued):
        claims = outcome.claims
        return JSONResponse({
            "access_token": outcome.token, "issued_token_type": TOKEN_TYPE_ACCESS,
            "token_type": "Bearer", "expires_in": claims["exp"] - claims["iat"],
            "scope": claims["scope"], "task_id": claims["task"]["id"],
            "decision_id": outcome.decision.decision_id}, headers=NO_STORE)
    d = outcome.decision
    return _oauth_error(_STATUS.get(outcome.error, 400), outcome.error, d.explanation, {
        "decision_id": d.decision_id, "reason_codes": [str(c) for c in d.reason_codes]})


def _parse(grant_type: str, subject_token: str, subject_token_type: str,
           actor_token: str | None, actor_token_type: str | None, audience: str | None,
           resource: str | None, scope: str | None, requested_token_type: str | None,
           authorization_details: str | None, *, default_audience: str,
           ) -> tuple[ExchangeAsk, Credential, Credential | None]:
    if grant_type != GRANT_TYPE:
        raise ExchangeError("unsupported_grant_type", f"grant_type must be {GRANT_TYPE}")
    if subject_token_type not in JWT_TOKEN_TYPES | {CONNECTION_TOKEN_TYPE}:
        raise ExchangeError("invalid_request",
                            f"subject_token_type {subject_token_type!r} is not supported "
                            f"(one of: {', '.join(sorted(JWT_TOKEN_TYPES))})")
    if (actor_token is None) != (actor_token_type is None):
        raise ExchangeError("invalid_request",
                            "actor_token and actor_token_type go together (RFC 8693 §2.1)")
    if actor_token_type is not None and actor_token_type not in JWT_TOKEN_TYPES:
        raise ExchangeError("invalid_request",
                            f"actor_token_type {actor_token_type!r} is not supported")
    if requested_token_type not in (None, TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT):
        raise ExchangeError("invalid_request",
                            f"requested_token_type must be {TOKEN_TYPE_ACCESS}: the broker "
                            "issues RFC 9068 access tokens")
    if audience and resource and audience != resource:
        raise ExchangeError("invalid_target", "name one target: audience or resource")
    target = audience or resource or default_audience
    scopes = frozenset(scope.split()) if scope is not None else None
    details = _task_details(authorization_details)
    lifetime = details.get("lifetime_s")
    ask = ExchangeAsk(audience=target, scopes=scopes, lifetime_s=lifetime,
                      task_id=details.get("task_id"), purpose=details.get("purpose"))
    return ask, BearerToken(subject_token), (BearerToken(actor_token) if actor_token else None)


def _connection_certificate(request: Request, components: Components,
                            subject_token_type: str) -> Credential | None:
    """The subject's X.509-SVID when ``subject_token_type`` names the connection's: a trusted
    proxy's forwarded certificate, else the TLS client certificate (``ExchangeError`` if
    there is none, or the forwarded header is malformed)."""
    if subject_token_type != CONNECTION_TOKEN_TYPE:
        return None
    try:
        chain = (forwarded_credential(request, components.settings)
                 or tls_client_chain(request))
    except IdentityError as e:
        raise ExchangeError("invalid_request", f"the forwarded certificate: {e}") from e
    if chain is None:
        raise ExchangeError("invalid_request",
                            "no client certificate: neither the TLS connection nor a trusted "
                            "proxy presented one")
    return chain


def _task_details(raw: str | None) -> dict[str, Any]:
    """The one ``urn:pdp:task`` object of ``authorization_details``, checked."""
    if raw is None:
        return {}
    try:
        details = json.loads(raw)
    except ValueError as e:
        raise ExchangeError("invalid_request", f"authorization_details is not JSON: {e}") from e
    ours = [d for d in details if isinstance(d, dict) and d.get("type") == TASK_DETAILS_TYPE] \
        if isinstance(details, list) else None
    if ours is None or len(ours) != 1 or len(ours) != len(details):
        raise ExchangeError("invalid_request",
                            f"authorization_details must be a JSON array of one object of "
                            f"type {TASK_DETAILS_TYPE}")
    task = ours[0]
    unknown = set(task) - {"type", "task_id", "purpose", "lifetime_s"}
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ExchangeError("invalid_request", f"unknown authorization_details member(s): {names}")
    for name in ("task_id", "purpose"):
        if name in task and not isinstance(task[name], str):
            raise ExchangeError("invalid_request", f"{name} must be a string")
    lifetime = task.get("lifetime_s")
    if lifetime is not None and (type(lifetime) is not int or not 0 < lifetime < 2**31):
        raise ExchangeError("invalid_request", "lifetime_s must be a positive integer")
    return task


@router.get("/v1/broker/jwks.json", summary="The broker's public keys (JWK Set)",
            responses={404: {"model": Problem}})
async def jwks(components: ComponentsDep) -> JSONResponse:
    """Every key whose credentials verify now: the signing key and retired keys still in
    their overlap. Verify issued tokens with any JOSE library against this set."""
    broker = _broker(components)
    if broker is None:
        return problem(404, "No credential broker", "the broker has no signing key")
    return JSONResponse(broker.keyring.jwks(components.clock.now()),
                        headers={"cache-control": "max-age=60"})


@router.get("/.well-known/oauth-authorization-server",
            summary="RFC 8414 authorization server metadata of the broker",
            responses={404: {"model": Problem}})
async def metadata(request: Request, components: ComponentsDep) -> JSONResponse:
    """Where the token endpoint and keys are, and what the broker supports."""
    broker = _broker(components)
    if broker is None:
        return problem(404, "No credential broker", "the broker has no signing key")
    base = str(request.base_url).rstrip("/")
    return JSONResponse({
        "issuer": broker.rules.issuer,
        "token_endpoint": f"{base}/v1/token",
        "jwks_uri": f"{base}/v1/broker/jwks.json",
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": ["none"],
        "authorization_details_types_supported": [TASK_DETAILS_TYPE],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "pdp_audiences": sorted(broker.rules.audiences),
        "pdp_max_lifetime_s": broker.rules.max_lifetime_s,
    })


@router.get("/v1/tasks", summary="Live tasks and their credentials",
            responses={401: {"model": Problem}, 403: {"model": Problem},
                       404: {"model": Problem}})
async def list_tasks(
        components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("broker.tasks.read"))],
        include_completed: bool = False,
) -> JSONResponse:
    """Each task with its owner, purpose, state and every credential issued for it (who
    asked, who delegated to whom, scope, expiry; never the token).
    Needs `Pdp::Action::"broker.tasks.read"`."""
    broker = _broker(components)
    if broker is None:
        return problem(404, "No credential broker", "the broker has no signing key")
    tasks = broker.tasks.tasks(include_completed=include_completed)
    return JSONResponse({"tasks": [_task_json(broker, t.id) for t in tasks]})


@router.post("/v1/tasks/{task_id}/complete", summary="Complete a task: its credentials die",
             responses={401: {"model": Problem}, 403: {"model": Problem},
                        404: {"model": Problem}, 503: {"model": Problem}})
async def complete_task(
        task_id: str, components: ComponentsDep,
        caller: Annotated[AdminCaller, Depends(admin_access("broker.task.complete"))],
) -> JSONResponse:
    """Mark the task completed and revoke every credential issued for it, on every
    replica from their next request. Only the task's owner, with its own (undelegated)
    credential, and only when the bundle permits `Pdp::Action::"broker.task.complete"`.
    Idempotent. Recorded as a `broker.task.complete` admin event."""
    broker = _broker(components)
    if broker is None:
        return problem(404, "No credential broker", "the broker has no signing key")
    task = broker.tasks.get(task_id)
    if task is None:
        return problem(404, "Task not found", f"no task with id {task_id}")
    if caller.principal != task.owner or caller.identity.actor is not None:
        return problem(403, "Forbidden", f"only the task's owner ({task.owner}), acting as "
                                         "itself, may complete it")
    try:
        done, credentials = await asyncio.to_thread(
            broker.tasks.complete, task_id, by=caller.principal, now=components.clock.now())
    except ContextUnavailable as e:
        return problem(503, "Not completed", str(e))
    try:
        await components.service.record_admin_event(
            "broker.task.complete", principal=caller.principal,
            authorized_by=caller.decision_id,
            detail={"task": task_id, "revoked_jtis": [c.jti for c in credentials]})
    except AuditUnavailable as e:
        return problem(503, "Completed but not recorded",
                       f"task {task_id}'s credentials are refused now, but the decision log "
                       f"could not record it: {e}")
    return JSONResponse(_task_json(broker, done.id))


def _task_json(broker: Broker, task_id: str) -> dict[str, Any]:
    task = broker.tasks.get(task_id)
    assert task is not None
    return {"id": task.id, "purpose": task.purpose, "owner": task.owner,
            "opened_at": task.opened_at, "completed_at": task.completed_at,
            "completed_by": task.completed_by, "live": task.live,
            "credentials": [c.to_json() for c in broker.tasks.credentials(task_id)]}


def _broker(components: Components) -> Broker | None:
    return components.broker


__all__ = ["router"]
