"""AuthZEN apps wired from real parts: the example bundle, and the certification fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings
from pdp.server import create_app

CERT_BUNDLE = Path(__file__).parent / "cert_bundle"
TRUSTED_PEP = "spiffe://example.org/peps/trusted-gateway"
UNTRUSTED_PEP = "spiffe://example.org/peps/other"
ETL = "spiffe://example.org/services/etl"


def _components(tmp: Path, policies: Path) -> Components:
    return build_components(load_settings(
        None, dev=True, policies=policies, state_dir=tmp / "state", watch_policies=False,
        trusted_assertors=[TRUSTED_PEP]))


@pytest.fixture
def components(tmp_path: Path, bundle_copy) -> Iterator[Components]:
    parts = _components(tmp_path, bundle_copy())
    yield parts
    parts.close()


@pytest.fixture
def cert_components(tmp_path: Path) -> Iterator[Components]:
    parts = _components(tmp_path, CERT_BUNDLE)
    yield parts
    parts.close()


async def _client(components: Components) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(components, watch=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://pdp.test") as c:
            yield c


@pytest.fixture
async def client(components: Components) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(components):
        yield c


@pytest.fixture
async def cert_client(cert_components: Components) -> AsyncIterator[httpx.AsyncClient]:
    """The certification fixture, asked by a trusted assertor (its bearer token is set)."""
    async for c in _client(cert_components):
        c.headers["authorization"] = "Bearer " + cert_components.dev_issuer.mint(TRUSTED_PEP)
        yield c


@pytest.fixture
def mint(components: Components) -> Callable[..., str]:
    def make(spiffe_id: str = ETL, **kw) -> str:
        return components.dev_issuer.mint(spiffe_id, **kw)

    return make
