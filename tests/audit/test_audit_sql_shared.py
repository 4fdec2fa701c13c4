"""The SQL that SQLite and PostgreSQL share (pdp.audit.sql), and the factory that picks a backend.

Each test runs against both real stores: the shared statements are spelled
by a dialect, so a wrong placeholder or a chunking slip shows on one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from pdp.audit.admin_state import AdminStateStore
from pdp.audit.factory import open_admin_state
from pdp.audit.memory.admin_state import MemoryAdminState
from pdp.audit.sql.dialect import IN_CHUNK
from pdp.audit.sqlite.admin_state import SqliteAdminState
from pdp.audit.store import DecisionStore
from tests.audit.conftest import MakeRecord
from tests.audit.pgschema import postgres_schema, require_postgres


def _settings(backend: str, tmp_path: Path, dsn: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        sqlite_path=tmp_path / "decisions.db",
        audit=SimpleNamespace(backend=backend, synchronous="FULL", busy_timeout_ms=5000,
                              postgres_dsn=dsn))


@pytest.fixture(params=["sqlite", "postgres"])
def admin_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AdminStateStore]:
    """The admin state as ``pdp serve`` opens it, beside each SQL log."""
    if request.param == "sqlite":
        store = open_admin_state(_settings("sqlite", tmp_path))
        yield store
        store.close()
        return
    require_postgres()
    with postgres_schema() as dsn:
        store = open_admin_state(_settings("postgres", tmp_path, dsn))
        yield store
        store.close()


def test_the_factory_opens_the_admin_state_of_the_configured_backend(tmp_path: Path) -> None:
    sqlite = open_admin_state(_settings("sqlite", tmp_path))
    try:
        assert isinstance(sqlite, SqliteAdminState) and sqlite.durable
        assert sqlite.source == f"sqlite:{tmp_path / 'decisions.db'}"
    finally:
        sqlite.close()
    assert isinstance(open_admin_state(_settings("memory", tmp_path)), MemoryAdminState)
    with pytest.raises(ValueError, match="memory, postgres, sqlite"):
        open_admin_state(_settings("cassandra", tmp_path))
    with pytest.raises(ValueError, match="postgres_dsn"):
        open_admin_state(_settings("postgres", tmp_path, dsn=None))


def test_a_write_of_more_keys_than_one_in_list_reads_every_body_before_it(
        admin_state: AdminStateStore) -> None:
    keys = [f"k{i:04d}" for i in range(IN_CHUNK * 2 + 7)]
    first = admin_state.write("grants", {k: "a" for k in keys[::2]})
    assert set(first.before.values()) == {None} and first.version == 1

    again = admin_state.write("grants", {k: "b" for k in keys}, only_new=True)
    # The bodies read before the write come from every chunk of the IN list.
    assert again.before == {k: ("a" if i % 2 == 0 else None) for i, k in enumerate(keys)}
    assert again.version == 2
    rows = admin_state.load().rows("grants")
    assert rows == {k: ("a" if i % 2 == 0 else "b") for i, k in enumerate(keys)}

    gone = admin_state.write("grants", deletes=keys[: IN_CHUNK + 1])
    assert gone.version == 3 and len(admin_state.load().rows("grants")) == len(keys) - IN_CHUNK - 1
    assert admin_state.write("grants", deletes=keys[:3]).version == 3  # nothing left to delete


def test_hashes_at_many_seqs_answer_from_every_chunk(sql_store: DecisionStore,
                                                     make_record: MakeRecord) -> None:
    for _ in range(IN_CHUNK + 30):
        sql_store.append_sync(make_record())
    stored = {row.seq: (row.hash, row.record()["decision_id"]) for row in sql_store.iter_stored()}
    wanted = [*stored, 0, len(stored) + 1]  # and two seqs that hold nothing
    assert sql_store.hashes_at(wanted) == stored  # type: ignore[attr-defined]
