"""A PDP with its broker, wired from real parts (dev issuer, SQLite log) on a frozen clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from context.clock import FixedClock
from pdp.components import Components, build_components
from pdp.config import load_settings
from tests.conftest import MONDAY_10, asgi_client

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
REPORTS = "spiffe://example.org/services/reports"
PLANNER = "spiffe://example.org/agents/planner"
SUMMARIZER = "spiffe://example.org/agents/summarizer"
REPORTER = "spiffe://example.org/agents/reporter"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_10)


@pytest.fixture
def components(tmp_path: Path, bundle_copy, clock: FixedClock) -> Components:
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "s")
    parts = build_components(settings, clock=clock)
    yield parts
    parts.close()


@pytest.fixture
async def client(components: Components) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(components) as c:
        yield c


@pytest.fixture
def svid(components: Components, clock: FixedClock):
    """A JWT-SVID of the dev issuer for ``spiffe_id``, issued now."""

    def make(spiffe_id: str, ttl_s: int = 3600, **kw: Any) -> str:
        assert components.dev_issuer is not None
        return components.dev_issuer.mint(spiffe_id, ttl_s=ttl_s, now=clock.at, **kw)

    return make


def task_details(task_id: str = "T-1", purpose: str = "summarize the weekly report",
                 **extra: Any) -> str:
    import json

    return json.dumps([{"type": "urn:pdp:task", "task_id": task_id, "purpose": purpose,
                        **extra}])


async def exchange(client: httpx.AsyncClient, subject: str, *, audience: str = REPORTS,
                   scope: str | None = "reports:read", actor: str | None = None,
                   details: str | None = None, **extra: str) -> httpx.Response:
    form = {"grant_type": GRANT, "subject_token": subject, "subject_token_type": JWT_TYPE,
            "audience": audience, **extra}
    if scope is not None:
        form["scope"] = scope
    if actor is not None:
        form.update(actor_token=actor, actor_token_type=JWT_TYPE)
    if details is not None:
        form["authorization_details"] = details
    return await client.post("/v1/token", data=form)
