"""How SQLite spells what the shared SQL leaves open (see :mod:`pdp.audit.sql.dialect`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from pdp.audit.chain.hashchain import canonical
from pdp.audit.sql.dialect import Dialect
from pdp.audit.sqlite.schema import rollback_quietly


def _transaction(begin: str) -> Callable[[sqlite3.Connection], AbstractContextManager[None]]:
    @contextmanager
    def transaction(conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute(begin)
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise

    return transaction


immediate = _transaction("BEGIN IMMEDIATE")
"""Takes the file's write lock at once, so what the transaction reads no other
writer can change before it commits."""

deferred = _transaction("BEGIN")
"""Every read inside sees one snapshot (WAL)."""


def _same(value: str | None) -> str | None:
    return value  # SQLite text holds any string, NUL included


def _json_list(values: Sequence[str]) -> str:
    return canonical(list(values))


SQLITE = Dialect(
    name="sqlite", placeholder="?", errors=(sqlite3.Error,), text=_same, text_list=_json_list,
    contains="EXISTS (SELECT 1 FROM json_each(decisions.{column}) AS e WHERE e.value = ?)",
    write_transaction=immediate, read_transaction=deferred,
    admin_lock=None)  # BEGIN IMMEDIATE already serializes writers of the file


__all__ = ["SQLITE", "deferred", "immediate"]
