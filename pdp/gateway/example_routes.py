"""The route table ``pdp serve --dev`` uses when the configuration has none.

The gateway guides (docs/integrations.md: Envoy ``ext_authz``, nginx
``auth_request``) show this table in their ``pdp.toml``; with ``make run`` it is
already in place, so their "try it" commands answer as written instead of
``request.no_route``. It maps the example bundle's resources (``policies/``):

| request                 | action  | resource               |
|-------------------------|---------|------------------------|
| ``GET /datasets/{name}``  | ``read``  | ``App::Dataset::"{name}"`` |
| ``PUT /datasets/{name}``  | ``write`` | ``App::Dataset::"{name}"`` |
| ``* /apis/{name}``        | ``call``  | ``App::Api::"{name}"``     |

Only in development mode, and only when ``routes`` is not set at all: an
explicit ``routes = []`` keeps the table empty, and outside ``--dev`` an
unconfigured table stays empty (every gateway request is denied), as before.
"""

from __future__ import annotations

EXAMPLE_ROUTES: tuple[dict[str, str], ...] = (
    {"method": "GET", "path": "/datasets/{name}", "action": "read",
     "resource_type": "App::Dataset", "resource_id": "{name}"},
    {"method": "PUT", "path": "/datasets/{name}", "action": "write",
     "resource_type": "App::Dataset", "resource_id": "{name}"},
    {"method": "*", "path": "/apis/{name}", "action": "call",
     "resource_type": "App::Api", "resource_id": "{name}"},
)

__all__ = ["EXAMPLE_ROUTES"]
