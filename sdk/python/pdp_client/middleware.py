"""ASGI middleware: authorize every request by a route table, before the app sees it.

## Example

    from pdp_client import AsyncPDPClient
    from pdp_client.middleware import PDPMiddleware
    from pdp_client.routes import Route

    app.add_middleware(PDPMiddleware, authorizer=AsyncPDPClient("http://127.0.0.1:8181"),
                       routes=[Route("GET", "/datasets/{name}", action="read",
                                     resource_type="App::Dataset", resource_id="{name}")],
                       unmatched="deny")

An allowed request goes on with the decision in ``request.state.pdp_decision``.
A denied one is answered **403** with the explanation as JSON (**401** when
the credential is missing or refused), and so is — by default — a request no
route matches: ``unmatched="allow"`` lets those through (e.g. ``/healthz``).
Works with any ASGI app (FastAPI, Starlette); it needs nothing but this SDK.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Literal

from pdp_client.guard import Authorizer, Guard, challenge
from pdp_client.models import Decision
from pdp_client.routes import Route, match

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PDPMiddleware:
    def __init__(self, app: ASGIApp, *, authorizer: Authorizer,
                 routes: Sequence[Route | dict[str, Any]],
                 unmatched: Literal["deny", "allow"] = "deny",
                 namespace: str | None = None, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self.routes = [Route.of(r) for r in routes]
        self.unmatched = unmatched
        self.guard = Guard(authorizer, namespace=namespace, trusted_proxies=trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else scope.get("path", "/")
        found = match(self.routes, scope["method"], path)
        if found is None:
            if self.unmatched == "allow":
                await self.app(scope, receive, send)
                return
            await _deny(send, 403, Decision.fail_closed(
                "request.no_route", f"Denied: no route matches {scope['method']} "
                                    f"{path.split('?', 1)[0]}."))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        client = scope.get("client")
        status, decision = await self.guard.check(
            headers=headers, peer=client[0] if client else None, action=found.action,
            resource=found.resource, context=found.context,
            request_id=headers.get("x-request-id"))
        if status != 200:
            await _deny(send, status, decision)
            return
        scope.setdefault("state", {})["pdp_decision"] = decision
        await self.app(scope, receive, send)


async def _deny(send: Send, status: int, decision: Decision) -> None:
    body = json.dumps(decision.as_dict()).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in challenge(status).items()]
    if decision.decision_id:
        headers.append((b"x-pdp-decision-id", decision.decision_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["PDPMiddleware"]
