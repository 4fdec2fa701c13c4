"""Fail closed through the real app: when the decision log cannot commit, ``/v1/authorize``
answers a deny with ``audit.unavailable``, on the fast path and on the FastAPI route alike.

The log really fails: another connection holds the SQLite file's write lock (as a long
transaction in another process would) and the log's busy timeout is short; or another
appender (a second worker) is stuck in its turn at writing the file, and the commit bound
passes. Nothing of our own is mocked.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pdp.api.authorize import AUTHORIZE_PATH
from pdp.api.fastpath import POST_PATHS
from pdp.components import Components, build_components
from pdp.config import load_settings
from pdp.server import create_app

ETL = "spiffe://example.org/services/etl"
DATASET = {"type": "App::Dataset", "id": "sales-daily"}


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


@contextmanager
def turn_held(path: Path) -> Iterator[None]:
    """Another worker stuck in its turn at writing the file (pdp.audit.sqlite.writer_turns)."""
    fd = os.open(path.with_name(path.name + "-writer"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


BLOCKERS = {"write lock": write_locked, "turn held": turn_held}


@pytest.fixture
def parts(tmp_path: Path, bundle_copy: Any) -> Iterator[Components]:
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "s",
                             watch_policies=False, audit={"busy_timeout_ms": 50, "commit_timeout_s": 0.5})
    components = build_components(settings)
    yield components
    components.close()


@pytest.fixture
async def client(parts: Components) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(parts, watch=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://pdp.test") as c:
            yield c


# Both ways to the one function (pdp/api/authorize.py answer_authorize): the fast path
# (pdp/api/fastpath.py), and the FastAPI route when the fast path steps aside.
PATHS = ["fast path", "route"]


@pytest.mark.anyio
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("blocker", BLOCKERS)
async def test_a_log_that_cannot_commit_makes_authorize_deny(
        client: httpx.AsyncClient, parts: Components, path: str, blocker: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert parts.dev_issuer is not None
    if path == "route":
        monkeypatch.delitem(POST_PATHS, AUTHORIZE_PATH)
    body = orjson.dumps({"subject": {"token": parts.dev_issuer.mint(ETL)}, "action": "read",
                         "resource": DATASET})

    async def ask() -> dict[str, Any]:
        r = await client.post("/v1/authorize", content=body,
                              headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        return r.json()

    allowed = await ask()
    assert allowed["decision"] == "allow"
    with BLOCKERS[blocker](parts.settings.sqlite_path):
        refused = await ask()
    assert refused["decision"] == "deny"
    assert refused["reason_codes"] == ["audit.unavailable"]
    again = await ask()
    assert again["decision"] == "allow"  # and back once the log commits again
    # The deny carries an id of its own and is not recorded; the allow it replaced was
    # never written either (its caller was told it was not): the log holds the two allows.
    recorded = [r["decision_id"] for r in parts.log.tail(10) if r["kind"] == "decision"]
    assert recorded == [allowed["decision_id"], again["decision_id"]]
