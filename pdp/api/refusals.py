"""Refusals at the door, decided and recorded like every other deny.

A request can be refused before there is anything to evaluate: a gateway
request no route maps, a malformed forwarded certificate, a caller not on the
PEP allowlist. Such a refusal is still a decision (README: every decision is
appended): :func:`refuse` hands it to the one ``DecisionService`` as an
``AuthorizeInput`` with ``refused`` set, which denies it with that reason code
and writes the same record as for any deny. When the request names no action
and resource of its own, the record names the HTTP request: its method as the
action, its path (without the query, which may carry secrets) as a
``Pdp::HttpRequest`` resource.
"""

from __future__ import annotations

from fastapi import Request

from pdp.api.deps import request_id
from pdp.components import Components
from pdp.decision.model import AuthorizeInput, Decision, DecisionError, ResourceRef
from pdp.identity.model import Credential

HTTP_REQUEST_TYPE = "Pdp::HttpRequest"


def http_request_resource(path: str) -> ResourceRef:
    """The resource a refused HTTP request is recorded on: its path, without the query."""
    return ResourceRef(HTTP_REQUEST_TYPE, path.split("?", 1)[0] or "/")


async def refuse(request: Request, components: Components, *, code: str, message: str,
                 pep: str | None, action: str | None = None,
                 resource: ResourceRef | None = None,
                 credential: Credential | None = None) -> Decision:
    """Deny ``request`` with ``code`` and record it; the decision (with its id)."""
    return await components.service.authorize(AuthorizeInput(
        credential=credential,
        action=action if action is not None else request.method,
        resource=resource if resource is not None else http_request_resource(request.url.path),
        request_id=request_id(request), pep=pep, refused=DecisionError(code, message)))


__all__ = ["HTTP_REQUEST_TYPE", "http_request_resource", "refuse"]
