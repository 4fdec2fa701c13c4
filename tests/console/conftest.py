"""The console driven over ASGI: a dev server's real parts (dev issuer, SQLite log)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pdp.components import Components, build_components
from pdp.config import load_settings
from tests.conftest import asgi_client

AUDITOR = "spiffe://example.org/audit/auditor"
SRE = "spiffe://example.org/ops/sre-console"
ETL = "spiffe://example.org/services/etl"
ORIGIN = {"origin": "http://pdp"}


@pytest.fixture
def components(tmp_path: Path, bundle_copy) -> Iterator[Components]:
    parts = build_components(load_settings(None, dev=True, policies=bundle_copy(),
                                           state_dir=tmp_path / "state"))
    yield parts
    parts.close()


@pytest.fixture
async def client(components) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(components) as c:
        yield c


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def sign_in(client: httpx.AsyncClient) -> Callable[..., Any]:
    async def go(principal: str) -> str:
        """Sign in as ``principal``; the CSRF token of the session."""
        answer = await client.post("/console/signin/dev", headers=ORIGIN,
                                   data={"principal": principal, "next": "/console/decisions"})
        assert answer.status_code == 303, answer.text
        page = await client.get("/console/integrity")
        return csrf_of(page.text) if page.status_code == 200 else csrf_of(
            (await client.get("/console/context")).text)

    return go


@pytest.fixture
def decide(client: httpx.AsyncClient, components: Components) -> Callable[..., Any]:
    async def go(principal: str, action: str, resource: dict[str, str]) -> dict[str, Any]:
        assert components.dev_issuer is not None
        token = components.dev_issuer.mint(principal)
        answer = await client.post("/v1/authorize", json={
            "subject": {"token": token}, "action": action, "resource": resource})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    return go
