"""A PDP with a route table, the dev issuer and a CA for forwarded X.509-SVIDs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings
from pdp.server import create_app
from tests.gateways.certs import Svid, make_svid

ETL = "spiffe://example.org/services/etl"
ROUTES = [
    {"method": "GET", "path": "/datasets/{name}", "action": "read",
     "resource_type": "App::Dataset", "resource_id": "{name}"},
    {"method": "PUT", "path": "/datasets/{name}", "action": "write",
     "resource_type": "App::Dataset", "resource_id": "{name}"},
]


@pytest.fixture(scope="session")
def svid() -> Svid:
    return make_svid(ETL)


@pytest.fixture
def components(tmp_path: Path, bundle_copy, svid: Svid) -> Iterator[Components]:
    settings = load_settings(
        None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
        watch_policies=False, routes=ROUTES, trusted_proxies=["127.0.0.1"],
        trust_domains=[{"name": "example.org",
                        "bundle_file": svid.write_bundle(tmp_path / "x509-bundle.json")}])
    parts = build_components(settings)
    yield parts
    parts.close()


@pytest.fixture
async def client(components: Components) -> AsyncIterator[httpx.AsyncClient]:
    """Requests come from 127.0.0.1, a trusted proxy (the ASGI transport's client address)."""
    app = create_app(components, watch=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://pdp") as c:
            yield c


@pytest.fixture
async def untrusted_client(components: Components) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(components, watch=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://pdp") as c:
            yield c


@pytest.fixture
def token(components: Components) -> str:
    return components.dev_issuer.mint(ETL)
