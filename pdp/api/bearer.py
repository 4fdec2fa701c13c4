"""``Authorization: Bearer <token>``, read by FastAPI's ``HTTPBearer``.

Three endpoints read a bearer token, each for a different party, so each has its
own security scheme in the OpenAPI document (``scheme_name``), saying whose token
it is:

- :data:`pep_bearer`: the decision endpoints (``/v1/authorize``, AuthZEN): the
  *calling PEP's* own JWT-SVID or access token (``pdp.api.pep``), never the subject's;
- :data:`admin_bearer`: admin and auditor endpoints: the caller's credential, whose
  right to call is a decision of the bundle's policies (``pdp.api.admin_auth``);
- :data:`forwarded_bearer`: the gateway doors: the *original request's* header,
  forwarded by Envoy or nginx (``pdp.api.gateways``).

All three are ``auto_error=False``: a missing or malformed header (another scheme,
no token) reads as ``None`` and the endpoint decides what that means — a recorded
refusal with ``identity.missing`` (401) where a credential is required. The scheme
name is case-insensitive and the token is stripped of surrounding spaces
(``fastapi.security.utils.get_authorization_scheme_param``).

Each scheme is an ordinary dependency (the ``*Dep`` aliases), and an awaitable on a
``Request`` for code that runs before FastAPI's routing (``pdp.api.fastpath``).
Ref: https://fastapi.tiangolo.com/reference/security/#fastapi.security.HTTPBearer
and RFC 6750 §2.1.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pdp.identity.model import BearerToken

pep_bearer = HTTPBearer(
    scheme_name="pepBearer", auto_error=False, bearerFormat="JWT",
    description="The calling PEP's own JWT-SVID or access token (or a TLS client "
                "certificate instead). Required when `pep_allowlist` is enforced.")
admin_bearer = HTTPBearer(
    scheme_name="adminBearer", auto_error=False, bearerFormat="JWT",
    description="The caller's JWT-SVID or access token; the bundle's policies decide "
                "whether it may call (`Pdp::Admin`).")
forwarded_bearer = HTTPBearer(
    scheme_name="forwardedBearer", auto_error=False, bearerFormat="JWT",
    description="The original request's credential, forwarded by the gateway.")

OPTIONAL_SCHEMES = frozenset({"pepBearer", "forwardedBearer"})
"""Schemes an operation may be called without: a PEP may present a TLS client
certificate instead, or need nothing (``--dev``, ``pep_allowlist = ["*"]``); a
gateway's original request may carry a forwarded certificate, or nothing. The
OpenAPI document says so with an empty requirement beside them (``pdp.api.openapi``);
``adminBearer`` is required (401 without it)."""

Bearer = HTTPAuthorizationCredentials | None
PepBearerDep = Annotated[Bearer, Depends(pep_bearer)]
AdminBearerDep = Annotated[Bearer, Depends(admin_bearer)]
ForwardedBearerDep = Annotated[Bearer, Depends(forwarded_bearer)]


def bearer_token(credentials: Bearer) -> BearerToken | None:
    """The credential to verify, from what ``HTTPBearer`` read (None: there was none)."""
    return BearerToken(credentials.credentials) if credentials is not None else None


__all__ = [
    "OPTIONAL_SCHEMES", "AdminBearerDep", "Bearer", "ForwardedBearerDep", "PepBearerDep",
    "admin_bearer", "bearer_token", "forwarded_bearer", "pep_bearer",
]
