"""The middleware's route table matches exactly like the PDP's gateway route table."""

from __future__ import annotations

import pytest
from pdp_client.routes import Route, match

from pdp.config import RouteConfig
from pdp.gateway.routes import RouteTable, UnsafePath

TABLE = [
    {"method": "GET", "path": "/datasets/{name}", "action": "read",
     "resource_type": "App::Dataset", "resource_id": "{name}"},
    {"method": "*", "path": "/apis/{api}/calls/{call}", "action": "call",
     "resource_type": "App::Api", "resource_id": "{api}", "context": {"method": "{method}"}},
    {"method": "PUT", "path": "/", "action": "write", "resource_type": "App::Dataset",
     "resource_id": "root"},
]


@pytest.mark.parametrize("method,uri", [
    ("GET", "/datasets/sales-daily"), ("get", "/datasets/sales%20daily?x=1"),
    ("POST", "/datasets/x"), ("GET", "/datasets/"), ("GET", "/datasets"),
    ("DELETE", "/apis/billing/calls/7"), ("PUT", "/"), ("GET", "/"),
    ("GET", "/datasets/../admin"), ("GET", "/datasets/a%2Fb"), ("GET", "//datasets/x"),
])
def test_sdk_and_pdp_route_tables_agree(method: str, uri: str) -> None:
    server = RouteTable.from_specs(RouteConfig(**r) for r in TABLE)
    try:
        expected = server.match(method, uri)
    except UnsafePath:
        expected = None
    found = match([Route.of(r) for r in TABLE], method, uri)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found.action, found.resource.type, found.resource.id, dict(found.context)) == (
            expected.action, expected.resource.type, expected.resource.id, dict(expected.context))
