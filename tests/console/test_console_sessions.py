"""Console sessions across workers and restarts: attacks on the shared session store.

Two ``Components`` over one state directory are two ``--workers`` processes (they
share the SQLite file, as ``pdp serve --workers 2`` does); building them again is
a restart. The PostgreSQL test runs the real ``pdp serve --workers 2``.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from pdp.audit.console_sessions import SessionRow
from pdp.audit.errors import AuditUnavailable
from pdp.audit.memory.console_sessions import MemorySessionRows
from pdp.audit.sqlite.console_sessions import SqliteSessionRows
from pdp.components import Components, build_components
from pdp.config import load_settings
from pdp.console.session import (
    COOKIE,
    SessionStore,
    SessionsUnavailable,
    csrf_of,
    id_hash,
    seal,
    unseal,
)
from pdp.identity.model import BearerToken
from tests.audit.pgschema import postgres_schema, require_postgres
from tests.conftest import POLICIES, asgi_client
from tests.console.conftest import AUDITOR, ORIGIN
from tests.console.conftest import csrf_of as csrf_on_page
from tests.server import start_server

pytestmark = pytest.mark.anyio

Factory = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]


class MovableClock:
    """A clock the test moves forward (an idle or expired session after a restart)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def worker(tmp_path: Path, clock: MovableClock) -> Iterator[Factory]:
    """Start a console "worker" over one shared state directory (each call: another one)."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    built: list[Components] = []

    @asynccontextmanager
    async def start() -> AsyncIterator[httpx.AsyncClient]:
        parts = build_components(load_settings(None, dev=True, policies=policies,
                                               state_dir=tmp_path / "state"), clock=clock)
        built.append(parts)
        try:
            async with asgi_client(parts) as client:
                yield client
        finally:
            parts.close()

    yield start
    for parts in built:
        parts.close()


async def _sign_in(client: httpx.AsyncClient) -> tuple[str, str]:
    """Dev sign-in as the auditor: (cookie, csrf)."""
    answer = await client.post("/console/signin/dev", headers=ORIGIN,
                               data={"principal": AUDITOR, "next": "/console/decisions"})
    assert answer.status_code == 303, answer.text
    page = await client.get("/console/decisions")
    assert page.status_code == 200
    return client.cookies[COOKIE], csrf_on_page(page.text)


async def _with_cookie(client: httpx.AsyncClient, cookie: str) -> int:
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie, path="/console")
    return (await client.get("/console/decisions")).status_code


async def test_a_session_made_on_one_worker_works_on_another_and_sign_out_ends_it_on_both(
        worker: Factory) -> None:
    async with worker() as a, worker() as b:
        cookie, csrf = await _sign_in(a)
        assert await _with_cookie(b, cookie) == 200  # B never saw the sign-in
        page = await b.get("/console/context")
        assert AUDITOR in page.text and csrf in page.text  # the same CSRF token on B
        out = await b.post("/console/signout", headers=ORIGIN, data={"csrf": csrf})
        assert out.status_code == 303
        assert await _with_cookie(a, cookie) == 303  # refused on A, where it was made
        assert await _with_cookie(b, cookie) == 303


async def test_a_session_survives_a_restart_but_not_its_idle_time_or_expiry(
        worker: Factory, clock: MovableClock) -> None:
    signed_in = clock.at
    async with worker() as a:
        kept, _ = await _sign_in(a)
        idle, _ = await _sign_in(a)
    async with worker() as restarted:
        assert await _with_cookie(restarted, kept) == 200
        clock.at += timedelta(minutes=20)
        assert await _with_cookie(restarted, kept) == 200  # used: its idle timer restarts
    clock.at += timedelta(minutes=20)  # `idle` now unused for 40 min, `kept` for 20
    async with worker() as again:
        assert await _with_cookie(again, idle) == 303
        assert await _with_cookie(again, kept) == 200
        ended = None
        for _ in range(20):  # used every 25 min: never idle, but 8 h after sign-in it ends
            clock.at += timedelta(minutes=25)
            if await _with_cookie(again, kept) != 200:
                ended = clock.at - signed_in
                break
        assert ended is not None and timedelta(hours=8) <= ended < timedelta(hours=8, minutes=25)
    async with worker() as last:
        assert await _with_cookie(last, kept) == 303


async def test_forged_guessed_and_tampered_sessions_are_refused(worker: Factory,
                                                              tmp_path: Path) -> None:
    async with worker() as a:
        cookie, _ = await _sign_in(a)
        db = tmp_path / "state" / "decisions.db"
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT * FROM console_sessions").fetchall()
        stored = " ".join(str(v) for v in rows[0])
        assert cookie not in stored  # only a hash of the id is kept
        assert rows[0][0] == id_hash(cookie)
        assert await _with_cookie(a, "A" * 43) == 303                # guessed
        assert await _with_cookie(a, id_hash(cookie)) == 303         # the stored key itself
        assert await _with_cookie(a, cookie[:-1] + ("B" if cookie[-1] != "B" else "C")) == 303
        assert await _with_cookie(a, "x" * 5000) == 303              # absurd
        assert await _with_cookie(a, cookie) == 200


def test_the_credential_is_sealed_under_the_session_id_and_bound_to_its_row() -> None:
    rows = MemorySessionRows()
    now = datetime.now(UTC)
    store = SessionStore(rows, lambda: now)
    session = store.create(principal="alice", credential=BearerToken("eyJ.id-token.sig"),
                           groups=("auditors",))
    row = rows.get(id_hash(session.id))
    assert row is not None and row.sealed is not None
    assert "id-token" not in row.sealed and session.id not in row.sealed
    assert unseal(session.id, row.sealed) == "eyJ.id-token.sig"
    again = store.get(session.id)
    assert again is not None and again.credential == BearerToken("eyJ.id-token.sig")
    assert again.csrf == csrf_of(session.id) == session.csrf
    other = store.create(principal="mallory", dev_principal="mallory")
    # Another session's sealed credential moved into this row does not open: refused, deleted.
    moved = seal(other.id, "eyJ.mallory.sig")
    rows.put(SessionRow(**{**_fields(row), "sealed": moved}), max_rows=10)
    assert store.get(session.id) is None
    assert rows.get(id_hash(session.id)) is None
    with pytest.raises(ValueError):
        unseal(session.id, "not base64 at all !!")


def _fields(row: SessionRow) -> dict[str, object]:
    return {name: getattr(row, name) for name in SessionRow.__slots__}


def test_an_unreachable_store_refuses_everyone(tmp_path: Path) -> None:
    rows = SqliteSessionRows(tmp_path / "decisions.db")
    now = datetime.now(UTC)
    store = SessionStore(rows, lambda: now)
    session = store.create(principal="alice", dev_principal="alice")
    assert store.get(session.id) is not None
    rows._conn.close()  # the database goes away under the console
    with pytest.raises(SessionsUnavailable):
        store.get(session.id)
    with pytest.raises(SessionsUnavailable):
        store.create(principal="bob", dev_principal="bob")
    with pytest.raises(AuditUnavailable):
        rows.count()


def test_sessions_are_bounded_least_recently_seen_first(tmp_path: Path) -> None:
    rows = SqliteSessionRows(tmp_path / "decisions.db")
    at = [datetime.now(UTC)]
    store = SessionStore(rows, lambda: at[0], max_sessions=3)
    made = []
    for _ in range(4):
        made.append(store.create(principal="p", dev_principal="p"))
        at[0] += timedelta(seconds=1)
    assert len(store) == 3
    assert store.get(made[0].id) is None and store.get(made[3].id) is not None


def test_postgres_sessions_work_across_the_workers_of_a_real_server(tmp_path: Path) -> None:
    """``pdp serve --workers 2`` on PostgreSQL (a schema of its own): a session works
    whichever worker answers, and after sign-out no worker takes it."""
    require_postgres()
    shutil.copytree(POLICIES, tmp_path / "policies")
    with postgres_schema("pdp_console") as dsn:
        server = start_server(["--dev", "--workers", "2"], cwd=tmp_path, env={
            "PDP_AUDIT__BACKEND": "postgres", "PDP_AUDIT__POSTGRES_DSN": dsn})
        try:
            origin = {"origin": server.url}
            with httpx.Client(base_url=server.url, timeout=10) as c:
                answer = c.post("/console/signin/dev", headers=origin,
                                data={"principal": AUDITOR, "next": "/console/decisions"})
                assert answer.status_code == 303, answer.text
                cookie = answer.cookies[COOKIE]

            def page(_: int) -> int:
                # A connection per request, so that either worker may take it.
                with httpx.Client(base_url=server.url, timeout=10,
                                  cookies={COOKIE: cookie}) as one:
                    return one.get("/console/decisions").status_code

            with ThreadPoolExecutor(4) as pool:
                for _ in range(20):  # until both workers have authorized a page
                    assert set(pool.map(page, range(8))) == {200}
                    if len(_console_instances(dsn)) >= 2:
                        break
            assert len(_console_instances(dsn)) == 2, "one worker took every page"
            with httpx.Client(base_url=server.url, timeout=10, cookies={COOKIE: cookie}) as c:
                csrf = csrf_on_page(c.get("/console/context").text)
                assert c.post("/console/signout", headers=origin,
                              data={"csrf": csrf}).status_code == 303
            with ThreadPoolExecutor(4) as pool:
                assert set(pool.map(page, range(16))) == {303}
            with psycopg.connect(dsn) as conn:
                assert conn.execute("SELECT count(*) FROM console_sessions").fetchone() == (0,)
        finally:
            server.stop()


def _console_instances(dsn: str) -> set[str]:
    """The worker instances that authorized a console page (``pep = 'console'``)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT record FROM decisions WHERE pep = 'console'").fetchall()
    return {json.loads(r[0])["instance"] for r in rows}


def test_a_session_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    """A sign-in acknowledged (the cookie set) is committed: ``kill -9`` does not lose it."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    server = start_server(["--dev"], cwd=tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            answer = c.post("/console/signin/dev", headers={"origin": server.url},
                            data={"principal": AUDITOR, "next": "/console/decisions"})
            assert answer.status_code == 303
            cookie = answer.cookies[COOKIE]
    finally:
        server.stop(signal.SIGKILL)
    again = start_server(["--dev"], cwd=tmp_path)
    try:
        with httpx.Client(base_url=again.url, timeout=10, cookies={COOKIE: cookie}) as c:
            page = c.get("/console/decisions")
            assert page.status_code == 200 and AUDITOR in page.text
    finally:
        again.stop()
