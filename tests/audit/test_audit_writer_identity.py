"""The writer's shortcuts store the same bytes: a record's row, text and hash are what the
log wrote before them (main at 1dcc93a), for generated records of every shape.

The digests below were taken by running :func:`stored_rows` on 1dcc93a's writer (issue 16,
round 8). Batches of 1, of up to 70 (the cached multi-row INSERTs and a cut at 64) and
groups of 3 and 100 (an INSERT built for its size) all go through the chain, so a
shortcut that reorders a row's values, changes the hashed text or the hash fails here.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.audit import SqliteDecisionLog
from pdp.audit.chain.hashchain import GENESIS, hash_body
from pdp.audit.records import COLUMNS
from pdp.audit.store import DecisionStore

# sha256 over every stored (seq, record, prev_hash, hash), and over every whole SQLite row.
CHAIN_DIGEST = "ef62ff37262480d7dd2a676fc055527c4a42ec6102f7c1deffa7ade86a01622a"
ROWS_DIGEST = "60284f1028c81f677b0bb31c91bf28252e765b44af58340611771e4dfcbdaac4"

_TEXTS = ["plain", "naïve ☃", "emoji 🦀", 'quote " and \\ backslash', "tab\tnew\nline",
          "\u2028sep", "", "ünïcödé " * 20, "x" * 3000]
_NUMBERS: list[Any] = [0, -1, 7, 2**53 + 1, 2**70, 1.5, 1e-7, 0.00001, 123456.789, -0.0]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice(_TEXTS)
    if kind == 1:
        return rng.choice(_NUMBERS)
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return f"v{rng.randrange(10**6)}"
    if kind in (4, 5):
        return {rng.choice(_TEXTS[:6]) + str(i): _value(rng, depth + 1)
                for i in range(rng.randrange(4))}
    return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def generated_records(n: int, seed: int = 16) -> list[dict[str, Any]]:
    """``n`` records with fixed ids and times and varied extra content."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        allow = rng.random() < 0.6
        record: dict[str, Any] = {
            "decision_id": f"0190c0de-{i:04x}-7000-8000-{rng.randrange(16**12):012x}",
            "kind": rng.choice(["decision", "decision", "admin"]),
            "timestamp": f"2026-12-07T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}."
                         f"{rng.randrange(10**6):06d}Z",
            "principal": rng.choice([None, "spiffe://example.org/a", "spiffe://ex.org/ü"]),
            "action": rng.choice([None, 'App::Action::"read"', 'App::Action::"write"']),
            "resource": f'App::Dataset::"d{rng.randrange(50)}"',
            "decision": "allow" if allow else rng.choice(["deny", None]),
            "pep": rng.choice([None, "gateway"]),
            "reasons": [{"policy": f"p{rng.randrange(5)}", "message": rng.choice(_TEXTS)}
                        for _ in range(rng.randrange(3))],
            "reason_codes": [rng.choice(["policy.permit", "policy.forbid", "audit.x"])
                             for _ in range(rng.randrange(3))],
            "extra": _value(rng),
        }
        if rng.random() < 0.1:  # given chain keys are ignored by the store
            record.update(seq=99, prev_hash="f" * 64, hash="e" * 64)
        records.append(record)
    return records


def append_in_batches(log: DecisionStore, records: list[dict[str, Any]]) -> None:
    """Singles, gathered batches of 1 to 70, and groups of 3 and 100, in a fixed order."""
    sizes = [1, 1, 2, 5, 64, 65, 70, 17, 1, 33]
    at = 0

    async def run() -> None:
        nonlocal at
        for size in sizes:
            await asyncio.gather(*(log.append(r) for r in records[at:at + size]))
            at += size

    asyncio.run(run())
    for size in (3, 100):
        outcomes = log.append_many_sync(records[at:at + size])
        assert all(isinstance(o, dict) for o in outcomes)
        at += size
    for r in records[at:]:
        log.append_sync(r)


RECORDS = 400


def stored_rows(log: DecisionStore, columns: str) -> list[tuple[Any, ...]]:
    with log._reading() as conn:  # type: ignore[attr-defined]
        rows: list[tuple[Any, ...]] = conn.execute(
            f"SELECT {columns} FROM decisions ORDER BY seq").fetchall()
    return rows


def digest(rows: list[tuple[Any, ...]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def test_sqlite_stores_the_same_rows_as_before(tmp_path: Path) -> None:
    with SqliteDecisionLog(tmp_path / "log.db", synchronous="NORMAL") as log:
        append_in_batches(log, generated_records(RECORDS))
        chain = stored_rows(log, "seq, record, prev_hash, hash")
        rows = stored_rows(log, ", ".join(COLUMNS))
        assert log.verify().ok
    assert len(chain) == RECORDS
    assert digest(chain) == CHAIN_DIGEST
    assert digest(rows) == ROWS_DIGEST


def test_postgres_stores_the_same_chain_as_before(pg_dsn: str) -> None:
    from pdp.audit.postgres import PostgresDecisionLog

    log = PostgresDecisionLog(pg_dsn)
    try:
        append_in_batches(log, generated_records(RECORDS))
        chain = stored_rows(log, "seq, record, prev_hash, hash")
        assert log.verify().ok
    finally:
        log.close()
    assert digest(chain) == CHAIN_DIGEST


def _reference_hash(prev_hash: str, text: str) -> str:
    """The link as 1dcc93a computed it: a fresh SHA-256 over the joined text."""
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


@settings(max_examples=300, deadline=None)
@given(prev=st.sampled_from([GENESIS, "a" * 64, ""]) | st.text(max_size=70),
       text=st.text(max_size=3000))
def test_hash_body_equals_a_fresh_sha256(prev: str, text: str) -> None:
    """The copied hash object is a fresh SHA-256 every time (lone surrogates: both refuse)."""
    try:
        expected = _reference_hash(prev, text)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            hash_body(prev, text)
        return
    assert hash_body(prev, text) == expected


def test_hash_body_from_many_threads_at_once_is_each_call_s_own() -> None:
    """Threads copying the shared starting hash never see each other's data."""
    texts = [f'{{"seq":{i},"x":"{"y" * (i % 4000)}"}}' for i in range(400)]
    expected = [_reference_hash(GENESIS, t) for t in texts]
    got: dict[int, list[str]] = {}
    start = threading.Barrier(4)

    def work(k: int) -> None:
        start.wait()
        got[k] = [hash_body(GENESIS, t) for t in texts]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[k] == expected for k in range(4))
    assert hash_body("", "") == _reference_hash("", "")  # the shared start is still empty
