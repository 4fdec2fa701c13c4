"""The durable admin state: its stores, acknowledgement only once durable, and what a
replica does while it cannot know the current revocations.

The failure is real, not mocked: the store's ``admin_state_meta`` table is
renamed under the running PDP (SQLite or PostgreSQL answer with an error, as
for a broken or unreachable store), then named back.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context.durable import DurableState
from pdp.audit.memory.admin_state import MemoryAdminState
from pdp.audit.sqlite.admin_state import SqliteAdminState
from pdp.components import Components, build_components
from pdp.config import load_settings
from tests.audit.pgschema import postgres_schema, require_postgres
from tests.conftest import asgi_client

pytestmark = pytest.mark.anyio

SRE = "spiffe://example.org/ops/sre-console"
ETL = "spiffe://example.org/services/etl"


# -- the stores -------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
OPS = st.lists(st.tuples(st.sampled_from(["revocations", "context"]),
                         st.dictionaries(KEYS, st.sampled_from(["1", "2"]), max_size=2),
                         st.lists(KEYS, max_size=2), st.booleans()), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_the_sqlite_store_agrees_with_the_in_memory_model(tmp_path_factory, ops) -> None:
    store = SqliteAdminState(tmp_path_factory.mktemp("admin") / "decisions.db")
    model = MemoryAdminState()
    try:
        for topic, puts, deletes, only_new in ops:
            got = store.write(topic, puts, deletes, only_new=only_new)
            want = model.write(topic, puts, deletes, only_new=only_new)
            assert (got.version, dict(got.before)) == (want.version, dict(want.before))
        assert {t: dict(r) for t, r in store.load().topics.items() if r} == \
            {t: dict(r) for t, r in model.load().topics.items() if r}
    finally:
        store.close()


def test_the_postgres_store_adds_once_counts_changes_and_survives_a_reopen() -> None:
    require_postgres()
    from pdp.audit.postgres.admin_state import PostgresAdminState

    with postgres_schema() as dsn:
        store = PostgresAdminState(dsn)
        assert store.write("revocations", {"r1": "x"}, only_new=True).before == {"r1": None}
        again = store.write("revocations", {"r1": "y"}, only_new=True)
        assert again.before == {"r1": "x"} and again.version == 1  # nothing changed
        assert store.write("context", deletes=("gone",)).version == 1
        assert store.write("context", {"incident:1": "{}"}).version == 2
        epoch = store.version()[0]
        store.close()
        reopened = PostgresAdminState(dsn)
        snap = reopened.load()
        assert (snap.epoch, snap.version) == (epoch, 2)
        assert dict(snap.rows("revocations")) == {"r1": "x"}
        reopened.close()


# -- a running PDP whose store breaks ---------------------------------------------

@contextmanager
def components_on(tmp_path: Path, bundle_copy: Callable[[], Path], max_age_s: float = 0.5,
                  **audit: Any) -> Iterator[Components]:
    settings = load_settings(
        None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "state",
        watch_policies=False, audit=audit,
        context={"resync_s": 0.05, "max_age": {"revocations_s": max_age_s}})
    parts = build_components(settings)
    try:
        yield parts
    finally:
        parts.close()


@contextmanager
def broken_store(parts: Components) -> Iterator[None]:
    """Rename the admin state's version table away, then back."""
    settings = parts.settings
    if settings.audit.backend == "postgres":
        def run(sql: str) -> None:
            with psycopg.connect(settings.audit.postgres_dsn, autocommit=True) as conn:
                conn.execute(sql)  # type: ignore[arg-type]
    else:
        def run(sql: str) -> None:
            with sqlite3.connect(settings.sqlite_path, isolation_level=None) as conn:
                conn.execute(sql)
    run("ALTER TABLE admin_state_meta RENAME TO admin_state_meta_away")
    try:
        yield
    finally:
        run("ALTER TABLE admin_state_meta_away RENAME TO admin_state_meta")


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


@pytest.fixture(params=["sqlite", "postgres"])
def parts(request, tmp_path: Path, bundle_copy) -> Iterator[Components]:
    if request.param == "sqlite":
        with components_on(tmp_path, bundle_copy) as made:
            yield made
        return
    require_postgres()
    with postgres_schema() as dsn, components_on(tmp_path, bundle_copy, backend="postgres",
                                                 postgres_dsn=dsn) as made:
        yield made


async def test_unknown_revocations_deny_every_credential_and_readyz_says_not_ready(
        parts: Components) -> None:
    def token(who: str) -> str:
        return parts.dev_issuer.mint(who, ttl_s=240)  # type: ignore[union-attr]

    async with asgi_client(parts) as client:
        async def decide() -> dict[str, Any]:
            r = await client.post("/v1/authorize", json={
                "subject": {"token": token(ETL)}, "action": "read",
                "resource": {"type": "App::Dataset", "id": "sales-daily"}})
            return r.json()

        assert (await decide())["decision"] == "allow"
        with broken_store(parts):
            async def refused() -> bool:
                return (await decide())["reason_codes"] == ["identity.revocation_unknown"]
            await eventually(refused)
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["revocations"]["known"] is False
            assert "admin_state_meta" in ready.json()["revocations"]["error"]

        async def allowed() -> bool:
            return (await decide())["decision"] == "allow"
        await eventually(allowed)
        assert (await client.get("/readyz")).status_code == 200


async def test_a_change_that_cannot_be_made_durable_is_refused_and_changes_nothing(
        tmp_path: Path, bundle_copy) -> None:
    with components_on(tmp_path, bundle_copy, max_age_s=60) as parts:
        headers = {"authorization": f"Bearer {parts.dev_issuer.mint(SRE, ttl_s=240)}"}  # type: ignore[union-attr]
        async with asgi_client(parts) as client:
            with broken_store(parts):
                for method, path, body in [
                        ("POST", "/v1/revocations", {"kind": "spiffe_id", "value": ETL}),
                        ("POST", "/v1/context/incidents", {"scope": "global", "reason": "x"}),
                        ("PUT", "/v1/context/risk", {"level": "high", "reason": "x"})]:
                    r = await client.request(method, path, headers=headers, json=body)
                    assert r.status_code == 503, r.text
            assert parts.revocations.list() == []  # type: ignore[union-attr]
            shown = (await client.get("/v1/context", headers=headers)).json()
            assert shown["incidents"] == [] and shown["risk"]["global"]["level"] == 0


def test_replicas_without_redis_share_a_revocation_through_the_durable_store(
        tmp_path: Path, bundle_copy) -> None:
    # Two replicas (or --workers) on one PostgreSQL, in-process context: they poll.
    require_postgres()
    from context.revocations import new_revocation

    with postgres_schema() as dsn, \
            components_on(tmp_path / "a", bundle_copy, backend="postgres",
                          postgres_dsn=dsn) as a, \
            components_on(tmp_path / "b", lambda: a.settings.policies, backend="postgres",
                          postgres_dsn=dsn) as b:
        entry = new_revocation("spiffe_id", ETL, reason="stolen")
        assert a.revocations.add(entry) == (entry, True)  # type: ignore[union-attr]
        state: DurableState = b.admin_state  # type: ignore[assignment]

        async def seen() -> bool:
            return [e.id for e in b.revocations.list()] == [entry.id]  # type: ignore[union-attr]
        asyncio.run(eventually(seen))
        assert state.known()
