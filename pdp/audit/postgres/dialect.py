"""How PostgreSQL spells what the shared SQL leaves open (see :mod:`pdp.audit.sql.dialect`)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from pdp.audit.sql.dialect import Dialect


def pg_text(value: str | None) -> str | None:
    """A query column as PostgreSQL can hold it: text cannot contain NUL (U+0000).

    The record itself is JSON, where NUL is escaped; only the copies in the
    query columns (and filters compared with them) need this.
    """
    if value is not None and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _text_array(values: Sequence[str]) -> list[str | None]:
    return [pg_text(v) for v in values]


def _transaction(conn: psycopg.Connection[Any]) -> AbstractContextManager[object]:
    # On an autocommit connection: BEGIN here, COMMIT on leaving, ROLLBACK on an error.
    return conn.transaction()


POSTGRES = Dialect(
    name="postgres", placeholder="%s", errors=(psycopg.Error, OSError), text=pg_text,
    text_list=_text_array, contains="? = ANY({column})",
    write_transaction=_transaction, read_transaction=_transaction,
    # One admin-state writer at a time across replicas, so the version counts changes exactly.
    admin_lock="SELECT version FROM admin_state_meta WHERE id = 1 FOR UPDATE")


__all__ = ["POSTGRES", "pg_text"]
