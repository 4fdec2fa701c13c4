"""The SQLite decision log's tables, connections and migrations.

The full record is kept in ``record`` as the JSON text its hash covers (chain
format 2, version 4; older rows also hold ``seq``/``prev_hash``/``hash``
inside, see :mod:`pdp.audit.chain.hashchain`); the other columns are copies of its
indexed fields so auditors' filters hit an index. The schema
version lives in ``PRAGMA user_version`` and each migration runs in its own
transaction, so a later release can add columns or indexes in place.

Indexes (each filter of ``GET /v1/decisions`` reaches one; ``seq`` is the
rowid, so every index also carries it and pages ordered by ``seq`` read only
the index until the page is chosen):

- ``decisions_ts (ts)``: a time range alone, and retention's cut;
- ``decisions_action_ts (action, ts)``, ``decisions_decision_ts (decision, ts)``;
- ``decision_id`` UNIQUE: lookups by id and idempotent appends.

``checkpoints`` (version 2) holds signed heads; see :mod:`pdp.audit.chain.checkpoint`.
``admin_state`` and ``admin_state_meta`` (version 5) keep what administrators
set; see :mod:`pdp.audit.admin_state`.

A principal (or a prefix of it) over a time range, the auditor's usual
question, is answered by ``principal_index (principal, ts, seq)`` (version 3,
replacing the ``(principal, ts)`` index of version 1), which is filled in bulk
behind the appends; see :mod:`pdp.audit.sqlite.principal_index`.
"""

from __future__ import annotations

import sqlite3
from itertools import chain
from pathlib import Path

from pdp.audit.records import COLUMNS, STORED
from pdp.audit.sql.log import refuse_newer_schema

SCHEMA_VERSION = 5

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
"""Allowed ``PRAGMA synchronous`` levels. In WAL mode only FULL (or EXTRA) makes
a commit survive power loss; NORMAL keeps the file consistent but may drop
the newest transactions."""

WAL_AUTOCHECKPOINT = 4000
"""WAL pages after which a commit copies the WAL back into the database file (SQLite's
default is 1,000). A copy-back costs the commit that triggers it a write of every page
changed since the last one and an fsync of the database file (and, at ``FULL``, one more
of the WAL, and of its header when the next commit starts it over): milliseconds,
paid by that commit's callers. An idle log's commit writes ~10 pages (the row and a leaf
of each of its six indexes), so at 1,000 every ~100th decision paid it; at 4,000 every
~400th, and the pages rewritten in between (the indexes' rightmost leaves) are copied
once. What is durable is unchanged: a commit is durable in the WAL (``FULL``: synced)
before anyone hears of it, and a reopened file replays the WAL whatever its length. The
WAL file keeps its largest size (~16 MB here) and is reused from its start."""

# version -> statements that bring the schema from version - 1 to version.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE decisions (
            seq          INTEGER PRIMARY KEY,
            decision_id  TEXT UNIQUE NOT NULL,
            kind         TEXT,
            ts           TEXT,
            principal    TEXT,
            action       TEXT,
            resource     TEXT,
            decision     TEXT,
            pep          TEXT,
            policies     TEXT,  -- JSON list of determining policy ids
            reason_codes TEXT,  -- JSON list
            record       TEXT NOT NULL,  -- canonical JSON incl. seq/prev_hash/hash
            prev_hash    TEXT,
            hash         TEXT
        )""",
        "CREATE INDEX decisions_principal_ts ON decisions (principal, ts)",
        "CREATE INDEX decisions_ts ON decisions (ts)",
        "CREATE INDEX decisions_action_ts ON decisions (action, ts)",
        "CREATE INDEX decisions_decision_ts ON decisions (decision, ts)",
    ),
    2: (
        """CREATE TABLE checkpoints (
            id         INTEGER PRIMARY KEY,
            seq        INTEGER NOT NULL,  -- the record the checkpoint covers (0: empty log)
            head_hash  TEXT NOT NULL,     -- that record's hash
            ts         TEXT NOT NULL,     -- when it was signed (UTC)
            kind       TEXT NOT NULL,     -- periodic | shutdown | manual | anchor
            key_id     TEXT,              -- which Ed25519 key signed it (NULL: unsigned)
            signature  TEXT               -- base64url Ed25519 signature
        )""",
        "CREATE INDEX checkpoints_seq ON checkpoints (seq)",
    ),
    3: (
        "DROP INDEX decisions_principal_ts",
        """CREATE TABLE principal_index (
            principal  TEXT NOT NULL,
            ts         TEXT NOT NULL,
            seq        INTEGER NOT NULL,  -- decisions.seq
            PRIMARY KEY (principal, ts, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE index_state (
            name         TEXT PRIMARY KEY,  -- 'principal'
            through_seq  INTEGER NOT NULL   -- every record up to it is in that index
        )""",
        "INSERT INTO principal_index (principal, ts, seq) SELECT principal, ts, seq "
        "FROM decisions WHERE principal IS NOT NULL ORDER BY principal, ts, seq",
        "INSERT INTO index_state (name, through_seq) "
        "SELECT 'principal', coalesce(max(seq), 0) FROM decisions",
    ),
    # Chain format 2: new rows keep ``record`` as the exact text their hash covers,
    # with ``seq`` first and without prev_hash/hash (those are columns). Nothing to change
    # in place, and older rows stay as they are; the version only keeps older releases, which would
    # misread the new rows, out of the file.
    4: (),
    # What administrators set (revocations, incidents, risk, grants), kept durably
    # beside the log; see pdp.audit.admin_state.
    5: (
        """CREATE TABLE admin_state (
            topic  TEXT NOT NULL,  -- revocations | context | grants
            key    TEXT NOT NULL,
            body   TEXT NOT NULL,  -- JSON
            PRIMARY KEY (topic, key)
        ) WITHOUT ROWID""",
        """CREATE TABLE admin_state_meta (
            id       INTEGER PRIMARY KEY CHECK (id = 1),
            epoch    TEXT NOT NULL,     -- names this store; set once
            version  INTEGER NOT NULL   -- grows with every committed change
        )""",
        "INSERT INTO admin_state_meta (id, epoch, version) "
        "VALUES (1, lower(hex(randomblob(4))), 0)",
    ),
}

INSERT = f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES "
ROW = f"({', '.join('?' * len(COLUMNS))})"
ROWS_PER_INSERT = 2000  # x 14 parameters, below SQLite's limit of 32766 per statement


# The INSERTs of 1 to 64 rows, built once. The statement cache is keyed by the SQL
# text: the same string object each time saves building and hashing a fresh one per commit.
_INSERT_N = tuple(INSERT + ", ".join([ROW] * n) for n in range(65))

INSERT_ONE = _INSERT_N[1]
"""One row's INSERT: an idle log's usual batch."""


def _insert_sql(n: int) -> str:
    """The INSERT of ``n`` rows."""
    return _INSERT_N[n] if n < len(_INSERT_N) else INSERT + ", ".join([ROW] * n)


def insert_rows(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    """Insert rows with as few multi-row INSERTs as SQLite's parameter limit allows."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        conn.execute(_insert_sql(len(chunk)), list(chain.from_iterable(chunk)))


def insert_atomically(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    """Insert and commit ``rows`` as one transaction, in as few statements as possible.

    Each statement releases the GIL while SQLite works and must win it back
    from a busy event loop, so statements per batch, not rows, set the pace. A
    batch that fits one multi-row INSERT is sent as just that: in autocommit
    mode a single statement is its own durable transaction.
    """
    if len(rows) == 1:  # an idle log's batch
        conn.execute(INSERT_ONE, rows[0])
        return
    if len(rows) <= ROWS_PER_INSERT:
        if rows:
            insert_rows(conn, rows)
        return
    conn.execute("BEGIN IMMEDIATE")
    insert_rows(conn, rows)
    conn.execute("COMMIT")


def connect(path: Path, *, busy_timeout_ms: int, synchronous: str = "FULL",
            writer: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: every transaction is an explicit BEGIN...COMMIT.

    The writer turns on WAL (readers never block it, nor it them), the requested
    ``synchronous`` level and :data:`WAL_AUTOCHECKPOINT`; readers are ``query_only``.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000)
    try:
        if writer:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch {path} to WAL (mode {mode})")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        else:
            conn.execute("PRAGMA query_only=1")
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; return the version found before.

    Refuses (``AuditUnavailable``) a file written by a newer release rather
    than guess at its layout.
    """
    conn.execute("BEGIN IMMEDIATE")  # re-read the version under the write lock: one migrator wins
    try:
        found: int = conn.execute("PRAGMA user_version").fetchone()[0]
        refuse_newer_schema(found, SCHEMA_VERSION)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise
    return found


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """End a failed transaction without masking the error that failed it."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # the connection is dropped by the caller anyway


__all__ = ["COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "STORED", "SYNCHRONOUS",
           "WAL_AUTOCHECKPOINT", "connect", "insert_atomically", "insert_rows", "migrate",
           "rollback_quietly"]
