"""The durable admin state (:mod:`pdp.audit.admin_state`) in either SQL store, written once.

A write is one transaction that reads what it replaces, keeps only real
changes (:func:`~pdp.audit.admin_state.changes`), deletes or upserts those
rows, and bumps ``version`` when anything changed; the ``version`` it
returns is read inside the same transaction. Writers are serialized, so the
version counts changes exactly: SQLite's ``BEGIN IMMEDIATE`` holds the file's
write lock, PostgreSQL's transaction first locks the ``admin_state_meta``
row (the dialect's ``admin_lock``), which every replica shares.

A subclass says how it connects and whether a failed connection is dropped
(:class:`~pdp.audit.sql.guarded.GuardedConnection`). A call that fails raises
``AuditUnavailable`` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pdp.audit.admin_state import AdminSnapshot, AdminWrite, changes
from pdp.audit.sql.dialect import IN_CHUNK, Connection, Dialect
from pdp.audit.sql.guarded import GuardedConnection

_META = "SELECT epoch, version FROM admin_state_meta WHERE id = 1"
_DELETE = "DELETE FROM admin_state WHERE topic = ? AND key = ?"
_UPSERT = ("INSERT INTO admin_state (topic, key, body) VALUES (?, ?, ?) "
           "ON CONFLICT (topic, key) DO UPDATE SET body = excluded.body")
_BUMP = "UPDATE admin_state_meta SET version = version + 1 WHERE id = 1"


class SqlAdminState(GuardedConnection):
    """:class:`~pdp.audit.admin_state.AdminStateStore` in the decision log's SQL store.

    One connection per store object, used under a lock (one call at a time).
    """

    what = "the admin state"
    durable = True

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
