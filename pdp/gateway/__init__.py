"""Gateways: how a proxied HTTP request becomes a question for the PDP.

Envoy's ext_authz and nginx's auth_request hand the PDP only the original
request's method, path and headers. The route table (``routes.py``, configured
as ``[[routes]]``) says which Cedar action on which resource that request
means; the caller's credential comes from ``Authorization`` or from a client
certificate forwarded by a trusted proxy. The HTTP endpoints are in
``pdp.api.gateways``.
"""

from pdp.gateway.routes import RouteError, RouteMatch, RouteTable, UnsafePath, compile_route

__all__ = ["RouteError", "RouteMatch", "RouteTable", "UnsafePath", "compile_route"]
