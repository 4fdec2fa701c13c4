"""One check for every way a service protects itself (FastAPI dependency, ASGI middleware).

Take the caller's credential from the request, ask the authorizer (a remote
client or the embedded PDP, sync or async), and say what HTTP status the
service should answer: 200 to go on, **401** when the caller presented no
usable credential (``identity.*``), **403** for any other deny — including a
PDP that could not be reached (fail closed).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pdp_client.credentials import credential_from_headers
from pdp_client.models import IDENTITY_MISSING, Decision, Resource, ResourceLike


class Authorizer(Protocol):
    """Anything with the clients' ``authorize`` (``PDPClient``, ``AsyncPDPClient``,
    ``EmbeddedPDP``, ``AsyncEmbeddedPDP``)."""

    def authorize(self, *, action: str, resource: ResourceLike, **kwargs: Any) -> Any: ...


class Guard:
    def __init__(self, authorizer: Authorizer, *, namespace: str | None = None,
                 trusted_proxies: Sequence[str] = ()) -> None:
        self.authorizer = authorizer
        self.namespace = namespace
        self.trusted_proxies = tuple(trusted_proxies)

    async def check(self, *, headers: Mapping[str, str], peer: str | None, action: str,
                    resource: ResourceLike, context: Mapping[str, Any] | None = None,
                    request_id: str | None = None) -> tuple[int, Decision]:
        credential = credential_from_headers(headers, peer, self.trusted_proxies)
        if credential is None:
            return 401, Decision.fail_closed(
                IDENTITY_MISSING, "Denied (identity.missing): present a credential "
                                  "(Authorization: Bearer <token>).")
        decision = await self.ask(**credential, action=action,
                                  resource=Resource.of(resource, namespace=self.namespace),
                                  context=context, request_id=request_id)
        if decision.allowed:
            return 200, decision
        identity_failed = any(c.startswith("identity.") for c in decision.reason_codes)
        return (401 if identity_failed else 403), decision

    async def ask(self, **kwargs: Any) -> Decision:
        if inspect.iscoroutinefunction(self.authorizer.authorize):
            decision: Decision = await self.authorizer.authorize(**kwargs)
        else:
            decision = await asyncio.to_thread(self.authorizer.authorize, **kwargs)
        return decision


def challenge(status: int) -> dict[str, str]:
    """``WWW-Authenticate`` for a 401 (RFC 6750: the caller should present a bearer token)."""
    return {"www-authenticate": 'Bearer realm="pdp"'} if status == 401 else {}


__all__ = ["Authorizer", "Guard", "challenge"]
