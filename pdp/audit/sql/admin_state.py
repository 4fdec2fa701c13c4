"""The durable admin state (:mod:`pdp.audit.admin_state`) in either SQL store, written once.

A write is one transaction that reads what it replaces, keeps only real
changes (:func:`~pdp.audit.admin_state.changes`), deletes or upserts those
rows, and bumps ``version`` when anything changed; the ``version`` it
returns is read inside the same transaction. Writers are serialized, so the
version counts changes exactly: SQLite's ``BEGIN IMMEDIATE`` holds the file's
write lock, PostgreSQL's transaction first locks the ``admin_state_meta``
row (the dialect's ``admin_lock``), which every replica shares.

A subclass says how it connects (:meth:`SqlAdminState._connection`) and
whether a failed connection is dropped (:meth:`SqlAdminState._drop_connection`).
A call that fails raises ``AuditUnavailable`` and changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import ClassVar

from pdp.audit.admin_state import AdminSnapshot, AdminWrite, changes
from pdp.audit.errors import AuditUnavailable
from pdp.audit.sql.dialect import IN_CHUNK, Connection, Dialect

_META = "SELECT epoch, version FROM admin_state_meta WHERE id = 1"
_DELETE = "DELETE FROM admin_state WHERE topic = ? AND key = ?"
_UPSERT = ("INSERT INTO admin_state (topic, key, body) VALUES (?, ?, ?) "
           "ON CONFLICT (topic, key) DO UPDATE SET body = excluded.body")
_BUMP = "UPDATE admin_state_meta SET version = version + 1 WHERE id = 1"


class SqlAdminState:
    """:class:`~pdp.audit.admin_state.AdminStateStore` in the decision log's SQL store.

    One connection per store object, used under a lock (one call at a time).
    """

    dialect: ClassVar[Dialect]
    source: str
    durable = True

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _connection(self) -> Connection:
        """The connection to use now (opened if there is none)."""
        raise NotImplementedError

    def _drop_connection(self) -> None:
        """Forget a connection that failed, so the next call opens a new one (default: keep it)."""

    def load(self) -> AdminSnapshot:
        with self._guarded() as conn, self.dialect.read_transaction(conn):
            epoch, version = _meta(conn)
            rows = conn.execute("SELECT topic, key, body FROM admin_state").fetchall()
        topics: dict[str, dict[str, str]] = {}
        for topic, key, body in rows:
            topics.setdefault(str(topic), {})[str(key)] = str(body)
        return AdminSnapshot(epoch, version, topics)

    def version(self) -> tuple[str, int]:
        with self._guarded() as conn:
            return _meta(conn)

    def write(self, topic: str, puts: Mapping[str, str] = {}, deletes: Collection[str] = (),
              *, only_new: bool = False) -> AdminWrite:
        d = self.dialect
        keys = [*puts, *deletes]
        with self._guarded() as conn, d.write_transaction(conn):
            if d.admin_lock is not None:
                conn.execute(d.admin_lock)
            before = _bodies(d, conn, topic, keys)
            changed = changes(before, puts, deletes, only_new=only_new)
            for key, body in changed.items():
                if body is None:
                    conn.execute(d.sql(_DELETE), (topic, key))
                else:
                    conn.execute(d.sql(_UPSERT), (topic, key, body))
            if changed:
                conn.execute(_BUMP)
            version = _meta(conn)[1]
        return AdminWrite(version, before)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        raise NotImplementedError

    @contextmanager
    def _guarded(self) -> Iterator[Connection]:
        """Hold the lock; the driver's errors become ``AuditUnavailable``."""
        with self._lock:
            try:
                yield self._connection()
            except self.dialect.errors as exc:
                self._drop_connection()
                raise AuditUnavailable(f"the admin state in {self.source} is unavailable: "
                                       f"{exc}") from exc


def _meta(conn: Connection) -> tuple[str, int]:
    row = conn.execute(_META).fetchone()
    return (str(row[0]), int(row[1])) if row is not None else ("", 0)


def _bodies(dialect: Dialect, conn: Connection, topic: str,
            keys: list[str]) -> dict[str, str | None]:
    """``key -> body`` of ``topic`` for each of ``keys`` (None: no such row)."""
    found: dict[str, str] = {}
    for start in range(0, len(keys), IN_CHUNK):
        chunk = keys[start:start + IN_CHUNK]
        sql = (f"SELECT key, body FROM admin_state WHERE topic = {dialect.placeholder} "
               f"AND key IN ({dialect.marks(len(chunk))})")
        for key, body in conn.execute(sql, (topic, *chunk)).fetchall():
            found[str(key)] = str(body)
    return {k: found.get(k) for k in keys}


__all__ = ["SqlAdminState"]
