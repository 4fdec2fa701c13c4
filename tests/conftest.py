"""Shared fixtures: repo paths, the example bundle, a frozen clock, real services."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"
# A Monday morning: inside the default business hours.
MONDAY_10 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a real service is missing, but fail under PDP_REQUIRE_SERVICES=1 (CI)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as e:
        message = f"{name} is not reachable on {host}:{port} ({e})"
    if os.environ.get("PDP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; PDP_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Callable[[], Path]:
    """A fresh, writable copy of the example bundle."""

    def make() -> Path:
        target = tmp_path / "policies"
        shutil.copytree(POLICIES, target)
        return target

    return make


@pytest.fixture(scope="session")
def example_bundle():
    from pdp.engine import load_bundle

    return load_bundle(POLICIES)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def asgi_client(components) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client driving the real app around ``components`` (lifespan included)."""
    from pdp.server import create_app

    app = create_app(components, watch=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://pdp") as client:
            yield client


@pytest.fixture
async def client(components) -> AsyncIterator[httpx.AsyncClient]:
    """The app around the test package's own ``components`` fixture."""
    async with asgi_client(components) as c:
        yield c
