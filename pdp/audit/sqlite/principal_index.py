"""The SQLite log's principal index: maintained in bulk, behind the appends.

Auditors ask most often for one principal (or a trust domain) over a time
range, so that needs an index. But a fleet has hundreds of principals, and an
ordinary ``(principal, ts)`` index on ``decisions`` puts every transaction's
records at hundreds of places in the B-tree: each commit rewrites hundreds of
index pages, which halved append throughput (``bench/audit_log.py``).

So the index is a table of its own, ``principal_index (principal, ts, seq)``,
filled every :data:`INDEX_EVERY` records by one sorted ``INSERT ... SELECT``
(:func:`catch_up`): the same pages, touched once per few thousand records
instead of once per commit. ``index_state`` holds the watermark, written in
the same transaction: every record with ``seq <= through_seq`` and a
principal is in the index. A principal query reads the index up to the
watermark and scans the short tail after it
(:func:`pdp.audit.sqlite.pages.page_sql`), so its answer is exact at any moment,
crash or not.

:func:`first_mismatch` lets ``verify`` prove the index says what the records
say: an entry removed (a decision hidden from the principal's history) or
added is reported as ``index mismatch``.
"""

from __future__ import annotations

import sqlite3

from pdp.audit.sqlite.schema import rollback_quietly

INDEX_EVERY = 8192
"""Records between two catch-ups: also the most a principal query scans unindexed."""

WATERMARK = "coalesce((SELECT through_seq FROM index_state WHERE name = 'principal'), 0)"
"""The watermark as an SQL expression; 0 without a state row (then every record is tail)."""

INDEXED_FIELDS = ("principal", "principal_prefix", "since", "until")
"""The filter fields an entry holds; any other field is checked on the record itself."""


def watermark(conn: sqlite3.Connection) -> int:
    """The highest seq up to which every record is in the principal index."""
    return int(conn.execute(f"SELECT {WATERMARK}").fetchone()[0])


def catch_up(conn: sqlite3.Connection) -> int:
    """Index every record past the watermark, in one transaction; return the new watermark.

    Reads the watermark under the write lock, so several processes sharing the
    file never index a record twice (and ``OR IGNORE`` makes a repeat harmless).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        through = watermark(conn)
        head = conn.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()[0]
        if head > through:
            # Sorted by the index key, so each B-tree page is visited once.
            conn.execute(
                "INSERT OR IGNORE INTO principal_index (principal, ts, seq) "
                "SELECT principal, ts, seq FROM decisions WHERE seq > ? "
                "AND principal IS NOT NULL ORDER BY principal, ts, seq", (through,))
            conn.execute("INSERT INTO index_state (name, through_seq) VALUES ('principal', ?) "
                         "ON CONFLICT (name) DO UPDATE SET through_seq = excluded.through_seq",
                         (head,))
            through = head
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise
    return through


def first_mismatch(conn: sqlite3.Connection, start_seq: int, end_seq: int) -> int | None:
    """The lowest seq in ``[start_seq, end_seq]`` where the index and the records disagree.

    Disagree: a record up to the watermark with a principal has no entry with
    its principal, ts and seq; or an entry has no such record, or lies past
    the watermark.
    """
    missing = conn.execute(
        "SELECT min(seq) FROM decisions AS d WHERE seq BETWEEN ? AND ? "
        f"AND seq <= {WATERMARK} AND principal IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM principal_index AS p WHERE p.principal = d.principal "
        "AND p.ts = d.ts AND p.seq = d.seq)", (start_seq, end_seq)).fetchone()[0]
    extra = conn.execute(
        "SELECT min(seq) FROM principal_index AS p WHERE seq BETWEEN ? AND ? "
        f"AND (seq > {WATERMARK} OR NOT EXISTS (SELECT 1 FROM decisions AS d "
        "WHERE d.seq = p.seq AND d.principal = p.principal AND d.ts = p.ts))",
        (start_seq, end_seq)).fetchone()[0]
    found = [s for s in (missing, extra) if s is not None]
    return min(found) if found else None


DELETE_ENTRIES = (
    "DELETE FROM principal_index WHERE (principal, ts, seq) IN "
    "(SELECT principal, ts, seq FROM decisions WHERE seq IN ({chunk}) AND principal IS NOT NULL)")
"""Retention: the entries of a chunk of records about to be deleted (``{chunk}`` selects
their seqs), each found by its key."""


__all__ = ["DELETE_ENTRIES", "INDEXED_FIELDS", "INDEX_EVERY", "WATERMARK", "catch_up",
           "first_mismatch", "watermark"]
