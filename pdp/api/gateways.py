"""Gateway doors: Envoy ext_authz (HTTP service) and nginx ``auth_request``.

A gateway needs no code: it forwards the original request's method, path and
credential, the route table (``[[routes]]``, ``pdp.gateway.routes``) maps them
to an action on a resource, and the same ``DecisionService`` decides and logs.

- **Envoy** (``http_service`` with ``path_prefix: /v1/gateway/envoy``) sends the
  original method and ``path_prefix`` + original path, with ``Authorization``
  and, when allowed, ``x-forwarded-client-cert``.
  Ref: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/ext_authz_filter
- **nginx** (``auth_request /_pdp``) proxies a subrequest that carries the
  original headers plus ``X-Original-Method`` and ``X-Original-URI``.
  Ref: https://nginx.org/en/docs/http/ngx_http_auth_request_module.html

Allow is **200** with ``x-pdp-decision-id`` (Envoy can pass it upstream, nginx
picks it up with ``auth_request_set``). Deny is **403** with the decision's
explanation as JSON. Anything else — no matching route, an unsafe path, a
malformed forwarded certificate, an internal failure — is also 403: a gateway
fails closed. Each such refusal is a decision like any deny: it has a decision
id and a record in the log (on a ``Pdp::HttpRequest`` resource named by the path).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pdp.api.bearer import Bearer, ForwardedBearerDep, bearer_token
from pdp.api.deps import ComponentsDep, echoed_id, request_id
from pdp.api.forwarded import forwarded_credential
from pdp.api.jsonbody import StrictJSONRoute
from pdp.api.pep import PepAllowlist, enforced, tls_client_chain
from pdp.api.refusals import http_request_resource, refuse
from pdp.components import Components
from pdp.config import Settings
from pdp.decision.model import AuthorizeInput, Decision, ResourceRef
from pdp.gateway.routes import RouteMatch, RouteTable, UnsafePath
from pdp.identity.errors import IdentityError
from pdp.identity.forwarded_cert import is_trusted_peer
from pdp.identity.model import Credential
from pdp.reasons import ReasonCode

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/gateway", tags=["gateways"], route_class=StrictJSONRoute)

ENVOY_PREFIX = "/v1/gateway/envoy"
DECISION_HEADER = "x-pdp-decision-id"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

class GatewayDeny(BaseModel):
    """A gateway's deny: the decision, explained (every refusal has its decision id)."""

    decision: Literal["deny"]
    decision_id: str | None = Field(description="None only if the refusal itself failed.")
    principal: str | None = None
    action: str | None = None
    resource: str | None = None
    reasons: list[dict[str, Any]]
    reason_codes: list[str]
    explanation: str


_DENY_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "Allowed (no body; `x-pdp-decision-id` names the decision)"},
    403: {"model": GatewayDeny,
          "description": "Denied (policy, no matching route, or a failure: fail closed)"}}


async def envoy(request: Request, components: ComponentsDep, bearer: ForwardedBearerDep,
                path: Annotated[str, Path(description="The original request's path (and "
                                                      "query), after `path_prefix`.")]
                ) -> Response:
    """Envoy's ext_authz HTTP service: the original method, and the original path after
    the configured `path_prefix` (`/v1/gateway/envoy`). 200 allows, 403 denies."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1")
    original = path[len(ENVOY_PREFIX):] if path.startswith(ENVOY_PREFIX) else path
    return await _gateway(request, components, bearer, door="envoy", method=request.method,
                          uri=original or "/")


async def nginx(request: Request, components: ComponentsDep,
                bearer: ForwardedBearerDep) -> Response:
    """nginx `auth_request`: reads `X-Original-Method` and `X-Original-URI` (set them with
    `proxy_set_header` in the auth location). 200 allows, 403 denies."""
    method = request.headers.get("x-original-method")
    uri = request.headers.get("x-original-uri")
    if not method or not uri:
        try:
            pep = gateway_pep(request, components, "nginx")
        except Exception:  # noqa: BLE001 - refused either way, and recorded
            pep = None
        return await _refuse(request, components, method=method or request.method,
                             uri=uri or "/", pep=pep,
                             code=ReasonCode.REQUEST_INVALID,
                             message="the auth subrequest lacks X-Original-Method or "
                                     "X-Original-URI")
    return await _gateway(request, components, bearer, door="nginx", method=method, uri=uri)


# Each door takes every method (Envoy forwards the original one), and OpenAPI says so.
_DOORS: list[tuple[str, Callable[..., Awaitable[Response]], str]] = [
    ("/envoy/{path:path}", envoy, "Envoy ext_authz (HTTP service)"),
    ("/nginx", nginx, "nginx auth_request")]
for _path, _endpoint, _summary in _DOORS:
    for _method in METHODS:
        router.add_api_route(_path, _endpoint, methods=[_method], responses=_DENY_DOC,
                             response_class=Response, summary=f"{_summary}: {_method}",
                             operation_id=f"{_endpoint.__name__}_{_method.lower()}")


async def _gateway(request: Request, components: Components, bearer: Bearer, *, door: str,
                   method: str, uri: str) -> Response:
    pep: str | None = None
    try:
        pep = gateway_pep(request, components, door)
        admitted = _admit(request, components, bearer, pep, method, uri)
        if isinstance(admitted, Refusal):
            return await _refuse(request, components, method=method, uri=uri, pep=pep,
                                 code=admitted.code, message=admitted.message,
                                 match=admitted.match)
        match, credential = admitted
        decision = await components.service.authorize(AuthorizeInput(
            credential=credential,
            action=match.action, resource=_resource(match), context=dict(match.context),
            request_id=request_id(request), pep=pep))
        return _answer(request, decision)
    except Exception:  # noqa: BLE001 - a gateway must fail closed, whatever went wrong
        log.exception("gateway %s failed; denying", door)
        return await _refuse(request, components, method=method, uri=uri, pep=pep,
                             code=ReasonCode.ENGINE_ERROR,
                             message="the PDP failed while deciding; denied (fail closed)")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a gateway refuses a request before it can be asked: a reason code and a sentence."""

    code: str
    message: str
    # The route it matched, when it got that far: the record then names its action and resource.
    match: RouteMatch | None = None


def _admit(request: Request, components: Components, bearer: Bearer, pep: str | None,
           method: str, uri: str) -> Refusal | tuple[RouteMatch, Credential | None]:
    """The route and the subject's credential, or the gateway's :class:`Refusal`."""
    if pep is None:
        return Refusal(ReasonCode.IDENTITY_MISSING, "this gateway endpoint answers only "
                       "trusted proxies (`trusted_proxies`) or allowlisted PEPs (TLS client "
                       "certificate)")
    try:
        match = route_table(request, components.settings).match(method, uri)
    except UnsafePath as e:
        return Refusal(ReasonCode.REQUEST_INVALID, f"refused path: {e}")
    if match is None:
        return Refusal(ReasonCode.REQUEST_NO_ROUTE,
                       f"no route matches {method.upper()} {uri.split('?', 1)[0]}")
    try:
        return match, gateway_credential(request, components.settings, bearer)
    except IdentityError as e:
        return Refusal(e.code, f"the forwarded client certificate was refused: {e.message}",
                       match)


async def _refuse(request: Request, components: Components, *, method: str, uri: str,
                  pep: str | None, code: str, message: str,
                  match: RouteMatch | None = None) -> Response:
    """A gateway refusal, decided and recorded by the decision service like any deny.

    The record names the route's action and resource when the request matched one,
    else the original request: its method, and its path without the query (which
    may carry secrets) as a ``Pdp::HttpRequest`` resource (``pdp.api.refusals``).
    Only if even that fails is the answer a deny without a decision id.
    """
    action, resource = ((match.action, _resource(match)) if match is not None
                        else (method.upper(), http_request_resource(uri)))
    try:
        decision = await refuse(request, components, code=code, message=message, pep=pep,
                                action=action, resource=resource)
    except Exception:  # noqa: BLE001 - still fail closed
        log.exception("gateway refusal could not be decided; denying without a record")
        return _unrecorded(request, message, code)
    return _answer(request, decision)
def _resource(match: RouteMatch) -> ResourceRef:
    """The matched route's resource as the decision service takes it."""
    return ResourceRef(type=match.resource.type, id=match.resource.id)


def route_table(request: Request, settings: Settings) -> RouteTable:
    """The compiled route table, built once per app from ``settings.routes``."""
    table = getattr(request.app.state, "gateway_routes", None)
    if table is None:
        table = RouteTable.from_specs(settings.routes)
        request.app.state.gateway_routes = table
    return table


def gateway_credential(request: Request, settings: Settings,
                       bearer: Bearer) -> Credential | None:
    """``Authorization: Bearer`` (``bearer``, as :data:`pdp.api.bearer.forwarded_bearer`
    read it), else a client certificate forwarded by a trusted proxy.

    A forwarded certificate (Envoy ``x-forwarded-client-cert``, nginx
    ``ssl-client-escaped-cert``) counts only when the TCP peer is in
    ``trusted_proxies`` (``pdp.api.forwarded``); its chain is then verified in
    full like any X.509-SVID. A trusted proxy's malformed header raises the
    ``IdentityError``.
    """
    token = bearer_token(bearer)
    if token is not None:
        return token
    return forwarded_credential(request, settings)


def gateway_pep(request: Request, components: Components, door: str) -> str | None:
    """Who is asking, for the record and the allowlist: the proxy itself.

    The ``Authorization`` header here is the *subject's* (forwarded from the
    original request), so the gateway is known by its TLS client certificate
    (an X.509-SVID, checked against ``pep_allowlist``) or by its address being in
    ``trusted_proxies``. When the allowlist is enforced and neither holds, None:
    the request is refused. Otherwise the door's name stands in.
    """
    settings = components.settings
    chain = tls_client_chain(request)
    if chain is not None:
        try:
            name = components.service.verify(chain, components.clock.now()).principal_id
        except IdentityError:
            name = None
        if name is not None and (not enforced(settings)
                                 or PepAllowlist.parse(settings.pep_allowlist).allows(name)):
            return name
    peer = request.client.host if request.client else ""
    if peer and is_trusted_peer(peer, settings.trusted_proxies):
        return f"{door}@{peer}"
    return None if enforced(settings) else door


def _answer(request: Request, decision: Decision) -> Response:
    headers = {DECISION_HEADER: decision.decision_id, **echoed_id(request_id(request))}
    if decision.allowed:
        return Response(status_code=200, headers=headers)
    return JSONResponse(_explained(decision), status_code=403, headers=headers)


def _explained(decision: Decision) -> dict[str, Any]:
    return {"decision": decision.decision, "decision_id": decision.decision_id,
            "principal": decision.principal, "action": decision.action,
            "resource": decision.resource,
            "reasons": [r.as_dict() for r in decision.reasons],
            "reason_codes": [str(c) for c in decision.reason_codes],
            "explanation": decision.explanation}


def _unrecorded(request: Request, explanation: str, code: str) -> JSONResponse:
    """The last resort: a deny that not even the decision service could give."""
    return JSONResponse({"decision": "deny", "decision_id": None, "reasons": [],
                         "reason_codes": [str(code)], "explanation": f"Denied: {explanation}."},
                        status_code=403, headers=echoed_id(request_id(request)))
