"""The PostgreSQL decision log's tables, connections and migrations.

The tables live in whatever schema ``search_path`` names first (set it in the
DSN: ``options=-csearch_path=pdp``); the PDP creates and migrates them
(``schema_version``, ``decisions``, ``checkpoints``, ``admin_state``) under the
log's advisory lock, so replicas starting together migrate once. Text columns
are ``COLLATE "C"`` so that comparisons are by code point, as in SQLite:
timestamps compare as text and principal prefixes are ranges.

Indexes, as in SQLite: ``(principal, ts)``, ``(ts)``, ``(action, ts)``,
``(decision, ts)``, UNIQUE ``decision_id``, and the primary key ``seq``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pdp.audit.errors import AuditUnavailable
from pdp.audit.sql.log import refuse_newer_schema

SCHEMA_VERSION = 3

_T = 'text COLLATE "C"'
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        f"""CREATE TABLE decisions (
            seq          bigint PRIMARY KEY,
            decision_id  {_T} NOT NULL UNIQUE,
            kind         {_T},
            ts           {_T},   -- RFC 3339 UTC, fixed width: sorts as text
            principal    {_T},
            action       {_T},
            resource     {_T},
            decision     {_T},
            pep          {_T},
            policies     text[] NOT NULL,  -- determining policy ids
            reason_codes text[] NOT NULL,
            record       text NOT NULL,    -- canonical JSON incl. seq/prev_hash/hash
            prev_hash    text NOT NULL,
            hash         text NOT NULL
        )""",
        "CREATE INDEX decisions_principal_ts ON decisions (principal, ts)",
        "CREATE INDEX decisions_ts ON decisions (ts)",
        "CREATE INDEX decisions_action_ts ON decisions (action, ts)",
        "CREATE INDEX decisions_decision_ts ON decisions (decision, ts)",
        f"""CREATE TABLE checkpoints (
            id         bigserial PRIMARY KEY,
            seq        bigint NOT NULL,
            head_hash  text NOT NULL,
            ts         {_T} NOT NULL,
            kind       text NOT NULL,
            key_id     text,
            signature  text
        )""",
        "CREATE INDEX checkpoints_seq ON checkpoints (seq)",
    ),
    # Chain format 2: ``record`` is the exact text its hash covers, with ``seq`` first
    # and without prev_hash/hash (see pdp.audit.sqlite.schema's version 4). Keeps older
    # releases out.
    2: (),
    # What administrators set, kept durably beside the log (pdp.audit.admin_state).
    3: (
        f"""CREATE TABLE admin_state (
            topic {_T} NOT NULL, key {_T} NOT NULL, body text NOT NULL,
            PRIMARY KEY (topic, key))""",
        """CREATE TABLE admin_state_meta (
            id int PRIMARY KEY CHECK (id = 1), epoch text NOT NULL, version bigint NOT NULL)""",
        "INSERT INTO admin_state_meta (id, epoch, version) "
        "VALUES (1, substr(md5(random()::text), 1, 8), 0)",
    ),
}


def network_bounds(dsn: str, connect_timeout_s: int) -> dict[str, Any]:
    """libpq settings that bound waiting on the network, unless ``dsn`` sets them itself.

    A connect timeout, and TCP keepalives with ``tcp_user_timeout``: a server that
    vanished (host down, firewall dropping packets) is noticed within about 10 s
    on an idle connection, and data left unacknowledged fails the call after the
    same time. https://www.postgresql.org/docs/current/libpq-connect.html
    """
    given = conninfo_to_dict(dsn)
    bounds: dict[str, Any] = {"connect_timeout": connect_timeout_s, "keepalives": 1,
                              "keepalives_idle": 5, "keepalives_interval": 2,
                              "keepalives_count": 3, "tcp_user_timeout": 10_000}
    return {k: v for k, v in bounds.items() if k not in given}


def lock_key(conn: psycopg.Connection[Any]) -> int:
    """The advisory-lock key of the log in the connection's first schema (a signed int64)."""
    row = conn.execute("SELECT current_schema()").fetchone()
    schema = row[0] if row is not None else None
    if schema is None:
        raise AuditUnavailable("PostgreSQL search_path names no existing schema for the "
                               "decision log; create it or fix options=-csearch_path=...")
    digest = hashlib.sha256(f"pdp.decision-log:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def migrate(conn: psycopg.Connection[Any], key: int) -> int:
    """Create or migrate the tables to :data:`SCHEMA_VERSION` under the log's lock.

    Returns the version found; refuses (``AuditUnavailable``) a schema written
    by a newer release.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                     "id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        found = row[0] if row is not None else 0
        refuse_newer_schema(found, SCHEMA_VERSION)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        if found < SCHEMA_VERSION:
            conn.execute("INSERT INTO schema_version (id, version) VALUES (1, %s) "
                         "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                         (SCHEMA_VERSION,))
    return found


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "lock_key", "migrate", "network_bounds"]
