"""A PostgreSQL schema of its own for a test, dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import require_service

BASE_DSN = os.environ.get("PDP_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def require_postgres() -> None:
    """Skip without a PostgreSQL server (fail under PDP_REQUIRE_SERVICES=1)."""
    info = conninfo_to_dict(BASE_DSN)
    require_service("PostgreSQL", str(info.get("host", "127.0.0.1")),
                    int(info.get("port", 5432)))


def dsn_for(schema: str) -> str:
    """``BASE_DSN`` with ``search_path`` set to ``schema``."""
    return make_conninfo(BASE_DSN, options=f"-csearch_path={schema}")


@contextmanager
def postgres_schema(prefix: str = "pdp_test") -> Iterator[str]:
    """Create ``<prefix>_<random>``, yield a DSN that uses it, drop it (CASCADE) after."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(BASE_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield dsn_for(schema)
    finally:
        with psycopg.connect(BASE_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
