"""Direct SQL on a store's database, as another process (or an attacker) has it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg

from pdp.audit import SqliteDecisionLog
from pdp.audit.chain.hashchain import body, record_text, stored_text


class RawSql:
    """One plain connection to the SQLite file or PostgreSQL schema behind ``store``.

    Statements use ``?`` placeholders for both; autocommit, so every statement
    is its own transaction unless the test says BEGIN.
    """

    def __init__(self, store: Any) -> None:
        self.postgres = not isinstance(store, SqliteDecisionLog)
        if self.postgres:
            self.conn: Any = psycopg.connect(store.dsn, autocommit=True)
        else:
            self.conn = sqlite3.connect(store.path, isolation_level=None)

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        if self.postgres:
            sql = sql.replace("?", "%s")
        return self.conn.execute(sql, params)

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RawSql:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the file, as an attacker or another process has."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


def text_of(record: dict[str, Any]) -> str:
    """``record``'s text as the stores write it (chain format 2): what a forger writes back."""
    return stored_text(record["seq"], record_text(body(record)))
