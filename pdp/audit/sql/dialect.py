"""What differs between the SQL stores, in one small object; everything else is shared.

SQLite and PostgreSQL run the same statements against the same tables
(``decisions``, ``checkpoints``, ``admin_state``): the SQL in
:mod:`pdp.audit.sql.reads` and :mod:`pdp.audit.sql.admin_state` is written once,
with ``?`` placeholders, and a :class:`Dialect` says how each store spells the
few things that differ:

=====================  ==============================  ===============================
                       SQLite (``sqlite3``)            PostgreSQL (``psycopg``)
=====================  ==============================  ===============================
placeholder            ``?``                           ``%s``
a list column          JSON text, ``json_each(...)``   ``text[]``, ``= ANY(...)``
text with NUL          kept                            NUL becomes U+FFFD
write transaction      ``BEGIN IMMEDIATE`` (file lock)  ``conn.transaction()``
admin-state writers    the file lock serializes them   ``SELECT ... FOR UPDATE``
driver failures        ``sqlite3.Error``               ``psycopg.Error``, ``OSError``
=====================  ==============================  ===============================

How each store connects, its schema and migrations, and how its writer
extends the chain stay in its own folder (``pdp/audit/sqlite``,
``pdp/audit/postgres``). This is no ORM: statements stay plain SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class Cursor(Protocol):
    """What the shared code reads from a cursor (``sqlite3.Cursor``, ``psycopg.Cursor``)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """A DB-API connection that executes one statement at a time (both drivers have this)."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...


Transaction = Callable[[Any], AbstractContextManager[object]]
"""Opens a transaction on a connection and commits it on leaving (rolls back on an error)."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one SQL store spells what the shared statements leave open."""

    name: str
    """``"sqlite"`` or ``"postgres"``."""

    placeholder: str
    """How a statement marks a parameter: ``?`` (qmark) or ``%s`` (format)."""

    errors: tuple[type[BaseException], ...]
    """The driver's failures: on the way to a record they become ``AuditUnavailable``."""

    text: Callable[[str | None], str | None]
    """A query column's value (or a filter compared with one) as the database holds it."""

    text_list: Callable[[Sequence[str]], Any]
    """``policies`` / ``reason_codes`` as the database holds them: JSON text, or an array."""

    contains: str
    """A condition "one element of list column ``{column}`` equals ``?``"."""

    write_transaction: Transaction
    """A transaction that may write; it holds the store's write lock where there is one."""

    read_transaction: Transaction
    """A transaction whose reads all see one snapshot."""

    admin_lock: str | None
    """Run first in an admin-state write to serialize writers (None: the transaction does)."""

    def sql(self, statement: str) -> str:
        """``statement``, written with ``?`` placeholders, in this dialect's style.

        The shared statements contain no ``?`` or ``%`` other than placeholders.
        """
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def marks(self, n: int) -> str:
        """``n`` placeholders separated by commas, for an ``IN (...)`` list."""
        return ", ".join([self.placeholder] * n)


IN_CHUNK = 500
"""Values per ``IN (...)`` list: far below SQLite's bound-parameter limit."""


__all__ = ["IN_CHUNK", "Connection", "Cursor", "Dialect", "Transaction"]
