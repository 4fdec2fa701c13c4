"""Chain format 2 (the hash covers the stored text) beside logs written in format 1.

Format 1, written before schema version 4 (SQLite) / 2 (PostgreSQL), kept the
chain keys inside ``record`` and hashed the canonical JSON of the rest. Such
rows must keep verifying and reading, and a log continues after them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pdp.audit import DecisionFilter, SqliteDecisionLog
from pdp.audit.auditing.auditor import export_lines, export_records
from pdp.audit.chain.hashchain import GENESIS, body, canonical, hash_body
from pdp.audit.chain.verify import verify_export
from pdp.audit.store import DecisionStore
from tests.audit.conftest import MakeRecord
from tests.audit.sqlraw import RawSql, raw, text_of


def fill(store: DecisionStore, make_record: MakeRecord, n: int, **kw: Any) -> list[dict[str, Any]]:
    return [store.append_sync(make_record(**kw)) for _ in range(n)]


def reopen(store: DecisionStore) -> DecisionStore:
    store.close()
    if isinstance(store, SqliteDecisionLog):
        return SqliteDecisionLog(store.path)
    from pdp.audit.postgres import PostgresDecisionLog

    return PostgresDecisionLog(store.dsn)  # type: ignore[attr-defined]


def rewrite_as_format_1(store: DecisionStore, records: list[dict[str, Any]]) -> list[str]:
    """Store ``records`` as the previous release did; returns their new hashes."""
    head, hashes = GENESIS, []
    with RawSql(store) as raw:
        for record in records:
            digest = hash_body(head, canonical(body(record)))
            sealed = {**body(record), "seq": record["seq"], "prev_hash": head, "hash": digest}
            raw.execute("UPDATE decisions SET record = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                        (canonical(sealed), head, digest, record["seq"]))
            head = digest
            hashes.append(digest)
        raw.execute("DROP TABLE admin_state")  # that release kept no admin state either
        raw.execute("DROP TABLE admin_state_meta")
        if isinstance(store, SqliteDecisionLog):
            raw.execute("PRAGMA user_version = 3")
        else:
            raw.execute("UPDATE schema_version SET version = 1")
    return hashes


@contextmanager
def format_1_log(store: DecisionStore, make_record: MakeRecord, n: int,
                 **kw: Any) -> Iterator[tuple[DecisionStore, list[dict[str, Any]], list[str]]]:
    """``store`` reopened after ``n`` records were rewritten as the previous release wrote
    them: the store, those records and their (format 1) hashes."""
    old = fill(store, make_record, n, **kw)
    hashes = rewrite_as_format_1(store, old)
    reopened = reopen(store)
    try:
        yield reopened, old, hashes
    finally:
        reopened.close()


def rows(store: DecisionStore) -> list[tuple[int, str, str, str]]:
    with RawSql(store) as raw:
        return raw.rows("SELECT seq, prev_hash, record, hash FROM decisions ORDER BY seq")


def test_each_hash_is_sha256_of_prev_hash_newline_the_stored_text(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    # The whole recipe for a verifier in any language: no JSON re-serialization.
    fill(sql_store, make_record, 5, request={"context": {"tiny": 1e-7, "when": 0.00001}})
    head = GENESIS
    for seq, prev_hash, text, digest in rows(sql_store):
        assert prev_hash == head
        assert digest == hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()
        assert text.startswith(f'{{"seq":{seq},')
        assert "prev_hash" not in json.loads(text) and "hash" not in json.loads(text)
        head = digest


def test_a_format_1_log_verifies_reads_and_continues_in_format_2(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    # A tiny float: format 1 hashed "1e-07", format 2 stores what orjson writes ("1e-7"),
    # so only the right rule per row verifies both.
    with format_1_log(sql_store, make_record, 4,
                      request={"context": {"tiny": 1e-7}}) as (store, old, hashes):
        assert store.verify().ok
        assert store.head() == (4, hashes[-1])  # type: ignore[attr-defined]
        got = store.get(old[1]["decision_id"])
        assert got is not None and body(got) == body(old[1])
        assert (got["seq"], got["hash"]) == (2, hashes[1])
        new = fill(store, make_record, 3)
        assert new[0]["seq"] == 5 and new[0]["prev_hash"] == hashes[-1]
        report = store.verify()
        assert report.ok and report.checked == 7
        assert [r["decision_id"] for r in store.tail(7)] == \
            [r["decision_id"] for r in old + new]
        with RawSql(store) as raw:  # the previous releases are kept out now
            version = raw.rows("PRAGMA user_version" if isinstance(store, SqliteDecisionLog)
                               else "SELECT version FROM schema_version")[0][0]
        assert version == (5 if isinstance(store, SqliteDecisionLog) else 3)


def test_an_edited_format_1_row_is_still_a_hash_mismatch(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    with format_1_log(sql_store, make_record, 5) as (store, _, _):
        fill(store, make_record, 2)
        with RawSql(store) as raw:
            text = raw.rows("SELECT record FROM decisions WHERE seq = 3")[0][0]
            forged = {**json.loads(text), "explanation": "edited"}
            raw.execute("UPDATE decisions SET record = ? WHERE seq = 3", (canonical(forged),))
        report = store.verify()
        assert (report.ok, report.problem, report.first_broken_seq) == (False, "hash mismatch", 3)


def test_a_format_2_row_dressed_as_format_1_does_not_verify(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    # Putting the chain keys into a new row's text switches it to the old rule: its
    # hash was not made by that rule, so it fails rather than passing unchecked.
    stored = fill(sql_store, make_record, 3, request={"context": {"tiny": 1e-7}})
    with RawSql(sql_store) as raw:
        raw.execute("UPDATE decisions SET record = ? WHERE seq = 2", (canonical(stored[1]),))
    report = sql_store.verify()
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "hash mismatch", 2)


def test_reformatted_text_with_the_same_meaning_is_a_hash_mismatch(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    # Format 2 hashes bytes: even whitespace is an edit (format 1 could not tell).
    stored = fill(sql_store, make_record, 3)
    spaced = json.dumps(json.loads(text_of(stored[1])), indent=1)
    with RawSql(sql_store) as raw:
        raw.execute("UPDATE decisions SET record = ? WHERE seq = 2", (spaced,))
    report = sql_store.verify()
    assert (report.ok, report.problem, report.first_broken_seq) == (False, "hash mismatch", 2)


def test_the_documented_recipe_checks_a_log_with_nothing_but_hashlib_and_sqlite3(
        tmp_path: Path, make_record: MakeRecord) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "audit-storage.md").read_text()
    script = re.search(r"python3 - \S+ <<'PY'\n(.*?)\nPY\n", doc, re.S)
    assert script is not None, "the recipe in docs/audit-storage.md"
    path = tmp_path / "decisions.db"
    with SqliteDecisionLog(path) as log:
        stored = fill(log, make_record, 5)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-", str(path)], input=script.group(1),
                              capture_output=True, text=True, timeout=60)

    assert run().stdout.split() == ["intact", "up", "to", "5", stored[-1]["hash"]]
    with raw(path) as conn:  # one more byte in one record
        text = conn.execute("SELECT record FROM decisions WHERE seq = 3").fetchone()[0]
        conn.execute("UPDATE decisions SET record = ? WHERE seq = 3",
                     (text.replace('"allow"', '"allow" '),))
    failed = run()
    assert failed.returncode != 0 and "AssertionError: 3" in failed.stderr


# -- exports: each JSON line is the stored text, with prev_hash and hash added at its end

SUFFIX = len(',"prev_hash":"' + "0" * 64 + '","hash":"' + "0" * 64 + '"}')


def exported(store: DecisionStore) -> list[str]:
    # Split at "\n" only: str.splitlines() also breaks at U+2028, which JSON strings hold raw.
    text = "".join(export_lines(export_records(store, DecisionFilter()), "jsonl"))
    assert text.endswith("\n")
    return text[:-1].split("\n")


def test_an_exported_line_is_the_record_and_cut_back_it_is_what_the_hash_covers(
        store: DecisionStore, make_record: MakeRecord) -> None:
    stored = fill(store, make_record, 4, request={"context": {"tiny": 1e-7, "é": "☃\u2028"}})
    lines = exported(store)
    head = GENESIS
    for line, record in zip(lines, stored, strict=True):
        assert json.loads(line) == store.get(record["decision_id"])
        text = line[:-SUFFIX] + "}"
        entry = json.loads(line)
        assert entry["prev_hash"] == head
        assert entry["hash"] == hashlib.sha256(f"{head}\n{text}".encode()).hexdigest()
        head = entry["hash"]


def test_node_verifies_an_export_with_its_own_sha256(
        sqlite_log: SqliteDecisionLog, make_record: MakeRecord, tmp_path: Path) -> None:
    # Another implementation than ours reads the lines as bytes: no JSON re-serialized.
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs)")
    fill(sqlite_log, make_record, 6, request={"context": {"n": 1e-7, "s": "naïve ☃ \u2028"}})
    export = tmp_path / "decisions.jsonl"
    export.write_text("\n".join(exported(sqlite_log)) + "\n", encoding="utf-8")
    script = r"""
      const crypto = require("crypto"), fs = require("fs");
      let head = "0".repeat(64), n = 0;
      for (const line of fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
        const { prev_hash, hash } = JSON.parse(line);
        const text = line.slice(0, -154) + "}";
        const want = crypto.createHash("sha256").update(prev_hash + "\n" + text, "utf8").digest("hex");
        if (prev_hash !== head || hash !== want) { console.log("broken at line", n + 1); process.exit(1); }
        head = hash; n += 1;
      }
      console.log("ok", n, head);
    """
    ok = subprocess.run([node, "-e", script, str(export)], capture_output=True, text=True,
                        timeout=60)
    assert ok.stdout.split() == ["ok", "6", sqlite_log.head()[1]], ok.stderr
    lines = export.read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3].replace('"decision":"allow"', '"decision":"deny"', 1)  # one edit
    assert lines[3] != export.read_text(encoding="utf-8").split("\n")[3]
    export.write_text("\n".join(lines), encoding="utf-8")
    broken = subprocess.run([node, "-e", script, str(export)], capture_output=True, text=True,
                            timeout=60)
    assert (broken.returncode, broken.stdout.strip()) == (1, "broken at line 4")


def test_a_format_1_row_is_exported_as_it_is_stored(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    with format_1_log(sql_store, make_record, 2) as (store, _, _):
        fill(store, make_record, 1)
        with RawSql(store) as raw:
            texts = [t for (t,) in raw.rows("SELECT record FROM decisions ORDER BY seq")]
        lines = exported(store)
        assert lines[:2] == texts[:2]  # chain keys inside already: the stored text itself
        assert lines[2].startswith(texts[2][:-1]) and lines[2] != texts[2]


def test_an_export_of_both_formats_verifies_and_shows_each_kind_of_break(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    with format_1_log(sql_store, make_record, 3) as (store, _, hashes):
        fill(store, make_record, 4)
        lines = exported(store)
    intact = verify_export(lines)
    assert (intact.ok, intact.checked, intact.last_seq) == (True, 7, 7)
    assert verify_export(lines[2:]).ok  # an excerpt proves itself from its first record
    assert verify_export(lines[2:]).last_seq == 7

    def broken(edited: list[str]) -> tuple[str | None, int | None]:
        report = verify_export(edited)
        return report.problem, report.first_broken_seq

    old_row = json.loads(lines[1])
    assert broken([lines[0], canonical({**old_row, "explanation": "x"}), *lines[2:]]) == \
        ("hash mismatch", 2)  # format 1
    assert broken([*lines[:4], lines[4].replace('"allow"', '"deny"', 1), *lines[5:]]) == \
        ("hash mismatch", 5)  # format 2
    assert broken(lines[:3] + lines[4:]) == ("sequence gap", 4)
    assert broken([*lines[:5], lines[6], lines[5]]) == ("out of order", 6)
    assert broken([*lines[:2], "not json", *lines[3:]]) == ("malformed record", 3)
    assert verify_export([]).ok
