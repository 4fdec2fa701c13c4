"""The SDK's tests: a real `pdp serve` process, and the real app in-process (ASGI)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings
from pdp.server import create_app
from tests.conftest import POLICIES
from tests.server import ServerProcess, start_server

ETL = "spiffe://example.org/services/etl"


@pytest.fixture(scope="session")
def pdp_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("sdk-pdp")
    shutil.copytree(POLICIES, workdir / "policies")
    return workdir


@pytest.fixture(scope="session")
def pdp_server(pdp_workdir: Path) -> Iterator[ServerProcess]:
    """One real PDP for the SDK's tests (`pdp serve --dev` on a free loopback port)."""
    server = start_server(["--dev"], cwd=pdp_workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mint(pdp_server: ServerProcess, pdp_workdir: Path) -> Callable[..., str]:
    """JWT-SVIDs from the server's development issuer (its key is in the workdir)."""
    from pdp.identity.dev_issuer import DevIssuer

    issuer = DevIssuer.load_or_create(pdp_workdir / ".pdp")

    def make(spiffe_id: str = ETL, **kw) -> str:
        return issuer.mint(spiffe_id, **kw)

    return make


@pytest.fixture
def components(tmp_path: Path, bundle_copy) -> Iterator[Components]:
    parts = build_components(load_settings(
        None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
        watch_policies=False))
    yield parts
    parts.close()


class Counting(httpx.AsyncBaseTransport):
    """The real app behind an ASGI transport, counting the requests that reach it."""

    def __init__(self, app) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def pdp_transport(components: Components) -> Iterator[Counting]:
    app = create_app(components, watch=False)
    async with app.router.lifespan_context(app):
        yield Counting(app)


@pytest.fixture
def local_mint(components: Components) -> Callable[..., str]:
    def make(spiffe_id: str = ETL, **kw) -> str:
        return components.dev_issuer.mint(spiffe_id, **kw)

    return make
