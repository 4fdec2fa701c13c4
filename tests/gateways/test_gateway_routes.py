"""The gateway route table: patterns, order, templates, and paths refused as ambiguous."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pdp.config import RouteConfig, load_settings
from pdp.gateway.routes import RouteError, RouteTable, UnsafePath, compile_route

ROUTES = [
    {"method": "GET", "path": "/datasets/{name}", "action": "read",
     "resource_type": "App::Dataset", "resource_id": "{name}"},
    {"method": "PUT", "path": "/datasets/{name}", "action": "write",
     "resource_type": "App::Dataset", "resource_id": "{name}",
     "context": {"purpose": "{method} via gateway"}},
    {"method": "*", "path": "/apis/{api}/calls/{call}", "action": "call",
     "resource_type": "App::Api", "resource_id": "{api}", "context": {"method": "{method}"}},
    {"method": "GET", "path": "/datasets/special", "action": "export",
     "resource_type": "App::Dataset", "resource_id": "special"},
]


@pytest.fixture
def table() -> RouteTable:
    return RouteTable.from_specs(RouteConfig(**r) for r in ROUTES)


def test_a_path_parameter_becomes_the_resource_id(table: RouteTable) -> None:
    match = table.match("GET", "/datasets/sales-daily?limit=5")
    assert match is not None and match.action == "read"
    assert (match.resource.type, match.resource.id) == ("App::Dataset", "sales-daily")
    assert match.params == {"name": "sales-daily"}


def test_the_method_selects_the_route_and_fills_templates(table: RouteTable) -> None:
    write = table.match("put", "/datasets/ledger")
    assert write is not None and write.action == "write"
    assert write.context == {"purpose": "PUT via gateway"}
    call = table.match("DELETE", "/apis/billing/calls/42")
    assert call is not None and call.resource.id == "billing" and call.context == {"method": "DELETE"}


def test_routes_are_tried_in_order_and_the_first_match_wins(table: RouteTable) -> None:
    match = table.match("GET", "/datasets/special")
    assert match is not None and match.action == "read"  # the {name} route comes first


def test_no_route_is_none(table: RouteTable) -> None:
    assert table.match("DELETE", "/datasets/ledger") is None
    assert table.match("GET", "/datasets") is None
    assert table.match("GET", "/datasets/ledger/rows") is None
    assert table.match("GET", "/datasets/") is None  # an empty parameter matches nothing


def test_segments_are_percent_decoded_like_the_upstream_reads_them(table: RouteTable) -> None:
    match = table.match("GET", "/data%73ets/sales%20daily")
    assert match is not None and match.resource.id == "sales daily"


@pytest.mark.parametrize("uri", [
    "/datasets/../admin", "/public/../datasets/ledger", "/datasets/./ledger",
    "/datasets//ledger", "/datasets/a%2Fb", "/datasets/%2e%2e", "/datasets/a%5Cb",
    "/datasets/%00", "datasets/ledger", "/datasets/%FF",
])
def test_ambiguous_paths_are_refused(table: RouteTable, uri: str) -> None:
    with pytest.raises(UnsafePath):
        table.match("GET", uri)


@pytest.mark.parametrize("route,problem", [
    ({"path": "datasets/{name}"}, "must start with '/'"),
    ({"path": "/datasets/x{name}"}, "whole segment"),
    ({"path": "/datasets/{name}/{name}"}, "used twice"),
    ({"resource_id": "{other}"}, "does not define"),
    ({"resource_id": "{name"}, "stray brace"),
    ({"method": "GET POST"}, "not an HTTP method"),
    ({"path": "/datasets/../{name}"}, "not allowed"),
])
def test_a_malformed_route_is_a_configuration_error(route: dict, problem: str) -> None:
    spec = {**ROUTES[0], **route}
    with pytest.raises(ValidationError, match=problem):
        RouteConfig(**spec)
    with pytest.raises(RouteError):
        compile_route(type("Spec", (), {**ROUTES[0], "context": {}, **route})())


def test_routes_load_from_settings(tmp_path) -> None:
    config = tmp_path / "pdp.toml"
    config.write_text('[[routes]]\nmethod = "GET"\npath = "/datasets/{name}"\naction = "read"\n'
                      'resource_type = "App::Dataset"\nresource_id = "{name}"\n')
    settings = load_settings(config)
    assert RouteTable.from_specs(settings.routes).match("GET", "/datasets/x") is not None


def test_the_gateway_package_exports_its_route_table() -> None:
    import pdp.gateway

    assert sorted(pdp.gateway.__all__) == ["RouteError", "RouteMatch", "RouteTable",
                                           "UnsafePath", "compile_route"]
    assert all(hasattr(pdp.gateway, name) for name in pdp.gateway.__all__)
