"""FastAPI integration: protect an endpoint with one line.

## Example

    from fastapi import Depends, FastAPI
    from pdp_client import AsyncPDPClient, DecisionCache
    from pdp_client.fastapi import PDP

    pdp = PDP(AsyncPDPClient("http://127.0.0.1:8181", cache=DecisionCache()), namespace="App")
    app = FastAPI()

    @app.get("/datasets/{name}")
    async def read(name: str, decision=Depends(pdp.require(
            "read", resource=lambda req: ("Dataset", req.path_params["name"])))):
        return {"dataset": name, "decision_id": decision.decision_id}

The dependency takes the caller's credential from the request (``Authorization:
Bearer``, or the certificate a trusted proxy forwards), asks the PDP, and
returns the allow ``Decision``. Otherwise it raises ``HTTPException``: **403**
with the decision's explanation as ``detail`` (``decision``, ``decision_id``,
``reason_codes``, ``explanation``, ``reasons``), or **401** with a Bearer
challenge when the credential is missing or refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import HTTPException, Request

from pdp_client.guard import Authorizer, Guard, challenge
from pdp_client.models import Decision, ResourceLike

ResourceArg = ResourceLike | Callable[[Request], Any]
ContextArg = Mapping[str, Any] | Callable[[Request], Any] | None


class PDP:
    """Builds FastAPI dependencies that authorize the incoming request.

    Args:
        authorizer: ``AsyncPDPClient`` (or ``PDPClient``, ``AsyncEmbeddedPDP``, ``EmbeddedPDP``).
        namespace: prefixed to a bare resource type (``"Dataset"`` -> ``"App::Dataset"``).
        trusted_proxies: addresses/CIDRs whose forwarded client certificate is taken
            (``x-forwarded-client-cert``, ``ssl-client-cert``); empty: never.
    """

    def __init__(self, authorizer: Authorizer, *, namespace: str | None = None,
                 trusted_proxies: Sequence[str] = ()) -> None:
        self.guard = Guard(authorizer, namespace=namespace, trusted_proxies=trusted_proxies)

    def require(self, action: str, *, resource: ResourceArg,
                context: ContextArg = None) -> Callable[[Request], Awaitable[Decision]]:
        """A dependency allowing the request only if the PDP permits ``action`` on ``resource``.

        ``resource`` (and ``context``) may be a value or a function of the request.
        """
        guard = self.guard

        async def pdp_authorization(request: Request) -> Decision:
            target = await _resolve(resource, request)
            ctx = await _resolve(context, request)
            status, decision = await guard.check(
                headers=request.headers, peer=request.client.host if request.client else None,
                action=action, resource=target, context=ctx,
                request_id=request.headers.get("x-request-id"))
            if status != 200:
                headers = {**challenge(status)}
                if decision.decision_id:
                    headers["x-pdp-decision-id"] = decision.decision_id
                raise HTTPException(status_code=status, detail=decision.as_dict(),
                                    headers=headers)
            request.state.pdp_decision = decision
            return decision

        return pdp_authorization


async def _resolve(value: Any, request: Request) -> Any:
    if callable(value):
        value = value(request)
    if inspect.isawaitable(value):
        value = await value
    return value


__all__ = ["PDP"]
