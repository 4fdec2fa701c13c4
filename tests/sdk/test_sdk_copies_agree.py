"""Where SDK code repeats server code on purpose, both give the same answers (issue 20).

The Python SDK keeps its own copies of the gateway's route table (``pdp_client.routes``,
for the middleware) and of forwarded-certificate parsing (``pdp_client.credentials``),
so that it needs nothing of the server. The cases in ``sdk/fixtures/routes.json`` and
``sdk/fixtures/forwarded-certs.json`` are run through the server's code and the SDK's; the
TypeScript SDK's tests run the same files (``sdk/typescript/test/contract.test.js``).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pdp_client.credentials import credential_from_headers
from pdp_client.routes import Route, match
from starlette.requests import Request

from pdp.api.forwarded import forwarded_credential
from pdp.gateway.routes import RouteTable, UnsafePath
from pdp.identity.errors import IdentityError
from tests.conftest import REPO

FIXTURES = REPO / "sdk" / "fixtures"
ROUTES = json.loads((FIXTURES / "routes.json").read_text())
FORWARDED = json.loads((FIXTURES / "forwarded-certs.json").read_text())


def _server_route(method: str, path: str):
    table = RouteTable.from_specs([SimpleNamespace(**r) for r in ROUTES["routes"]])
    try:
        found = table.match(method, path)
    except UnsafePath:
        return None
    if found is None:
        return None
    return {"action": found.action, "resource": {"type": found.resource.type,
                                                 "id": found.resource.id},
            "context": dict(found.context)}


def _sdk_route(method: str, path: str):
    found = match([Route.of(r) for r in ROUTES["routes"]], method, path)
    if found is None:
        return None
    return {"action": found.action, "resource": {"type": found.resource.type,
                                                 "id": found.resource.id},
            "context": dict(found.context)}


@pytest.mark.parametrize("case", ROUTES["cases"], ids=lambda c: f"{c['method']} {c['path']}")
def test_route_tables_agree(case) -> None:
    assert _server_route(case["method"], case["path"]) == case["expect"]
    assert _sdk_route(case["method"], case["path"]) == case["expect"]


def _server_credential(case):
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(k.encode(), v.encode()) for k, v in case["headers"].items()],
             "client": (case["peer"], 40000)}
    settings = SimpleNamespace(trusted_proxies=case["trusted_proxies"])
    try:
        credential = forwarded_credential(Request(scope), settings)
    except IdentityError:
        return "refused"
    return None if credential is None else {"x509": credential.pem}


@pytest.mark.parametrize("case", FORWARDED["cases"], ids=lambda c: c["description"])
def test_forwarded_certificates_agree(case) -> None:
    assert _server_credential(case) == case["expect"]
    if case["expect"] != "refused":  # a header the PDP refuses is not compared (see the file)
        assert credential_from_headers(case["headers"], case["peer"],
                                       case["trusted_proxies"]) == case["expect"]
