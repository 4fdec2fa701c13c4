"""Admin endpoints are authorized by the bundle's own Cedar policies.

An admin call is a decision like any other: the caller's bearer credential
(``Authorization: Bearer <token>``, read by ``pdp.api.bearer.admin_bearer``) is
verified, and ``Pdp::Action::"<action>"`` on ``Pdp::Admin::"<area>"`` is evaluated
by the same ``DecisionService``, so every admin call — allowed or refused — is in the
decision log. A credential that fails is 401; a policy deny is 403 with the explanation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pdp.api.bearer import AdminBearerDep, bearer_token
from pdp.api.deps import ComponentsDep, request_id
from pdp.api.problems import PROBLEM_JSON
from pdp.components import Components
from pdp.decision.model import AuthorizeInput, Decision, ResourceRef
from pdp.engine.actions import cedar_uid
from pdp.engine.pdp_schema import ADMIN_ACTION_TYPE, ADMIN_ACTIONS, ADMIN_TYPE
from pdp.identity.model import Credential, VerifiedIdentity


@dataclass(frozen=True, slots=True)
class AdminCaller:
    """Who called an admin endpoint, and the decision that let them."""

    identity: VerifiedIdentity
    decision_id: str

    @property
    def principal(self) -> str:
        return self.identity.principal_id


class AdminRefused(Exception):
    def __init__(self, status: int, decision: Decision) -> None:
        self.status = status
        self.decision = decision


def admin_access(action: str) -> Callable[..., Awaitable[AdminCaller]]:
    """A dependency that lets the call through only if the bundle permits ``action``."""
    admin_area(action)  # an unknown action fails here, when the route is declared

    async def dependency(request: Request, components: ComponentsDep,
                         bearer: AdminBearerDep) -> AdminCaller:
        return await authorize_admin(components, bearer_token(bearer), action,
                                     request_id=request_id(request), pep="admin-api")

    return dependency


def admin_area(action: str) -> str:
    """The ``Pdp::Admin`` area an admin action acts on; ``ValueError`` for an unknown one."""
    area = next((a for a, names in ADMIN_ACTIONS.items() if action in names), None)
    if area is None:
        raise ValueError(f"{action!r} is not an admin action; see pdp_schema.ADMIN_ACTIONS")
    return area


async def authorize_admin(components: Components, credential: Credential | None, action: str,
                          *, request_id: str | None, pep: str) -> AdminCaller:
    """Decide ``Pdp::Action::"<action>"`` on ``Pdp::Admin::"<area>"`` for ``credential``.

    The one authorization of every admin door (the JSON API, the console): the
    decision is logged like any other. Raises :class:`AdminRefused` (401 when the
    credential failed, 403 when the policies deny).
    """
    decision = await components.service.authorize(AuthorizeInput(
        credential=credential,
        action=cedar_uid(ADMIN_ACTION_TYPE, action),
        resource=ResourceRef(ADMIN_TYPE, admin_area(action)),
        request_id=request_id, pep=pep))
    if decision.allowed and decision.identity is not None:
        return AdminCaller(identity=decision.identity, decision_id=decision.decision_id)
    identity_failed = decision.identity is None
    raise AdminRefused(401 if identity_failed else 403, decision)


def install_admin_handler(app: FastAPI) -> None:
    @app.exception_handler(AdminRefused)
    async def _refused(_: Request, exc: AdminRefused) -> JSONResponse:
        d = exc.decision
        body = {"type": "about:blank", "status": exc.status,
                "title": "Authentication required" if exc.status == 401 else "Forbidden",
                "detail": d.explanation, "decision_id": d.decision_id,
                "reason_codes": [str(c) for c in d.reason_codes]}
        headers = {"www-authenticate": 'Bearer realm="pdp-admin"'} if exc.status == 401 else {}
        return JSONResponse(body, status_code=exc.status, media_type=PROBLEM_JSON,
                            headers=headers)
