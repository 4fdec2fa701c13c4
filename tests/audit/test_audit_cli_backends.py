"""The reading tools open the configured store, PostgreSQL included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pdp.audit.factory import open_decision_log


def test_audit_tail_reads_a_postgres_log(pg_dsn: str, make_record, tmp_path: Path) -> None:
    store = open_decision_log("postgres", postgres_dsn=pg_dsn)
    try:
        record = store.append_sync(make_record())
    finally:
        store.close()
    env = {**os.environ, "PDP_AUDIT__BACKEND": "postgres", "PDP_AUDIT__POSTGRES_DSN": pg_dsn}
    r = subprocess.run([sys.executable, "-m", "pdp.cli.main", "audit", "tail", "--json"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["decision_id"] == record["decision_id"]
