"""A decision log in process memory: for tests and the CLI's ``pdp check``.

Same chain, same answers to queries as the SQLite store, nothing on disk.
"Durably committed" here means "in this process's list", so it suits one-shot
commands and tests, never ``pdp serve``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

from pdp.audit.chain.hashchain import GENESIS, ChainChecker, ChainReport, hash_body, stored_text
from pdp.audit.errors import AuditUnavailable, DuplicateDecision
from pdp.audit.query import DecisionFilter, Page, check_limit, decode_cursor, encode_cursor, matches
from pdp.audit.records import IndexedColumns, StoredRow, prepare, same_record


class _Row(NamedTuple):
    """One stored record: its query columns and the row as stored."""

    columns: IndexedColumns
    stored: StoredRow

    def record(self) -> dict[str, Any]:
        return self.stored.record()


class MemoryDecisionLog:
    """A thread-safe, in-memory :class:`~pdp.audit.store.DecisionStore`.

    Records are kept as their stored JSON text and parsed on every read, so a
    caller can never change what the log holds through a returned dict.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[_Row] = []  # index = seq - 1
        self._by_id: dict[str, int] = {}
        self._head = GENESIS
        self._closed = False

    async def append(self, record: dict[str, Any]) -> dict[str, Any]:
        return self.append_sync(record)  # no I/O to wait for

    def append_sync(self, record: dict[str, Any]) -> dict[str, Any]:
        prepared = prepare(record)
        cols = prepared.columns
        with self._lock:
            if self._closed:
                raise AuditUnavailable("decision log is closed")
            if (index := self._by_id.get(cols.decision_id)) is not None:
                found = self._rows[index].record()
                if not same_record(prepared, found):
                    raise DuplicateDecision(f"decision_id {cols.decision_id} already stored")
                return found
            seq = len(self._rows) + 1
            text = stored_text(seq, prepared.body_json)
            digest = hash_body(self._head, text)
            self._rows.append(_Row(cols, StoredRow(text, seq, self._head, digest)))
            stored = prepared.stored(seq, self._head, digest)
            self._by_id[cols.decision_id] = seq - 1
            self._head = digest
        return stored

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def get(self, decision_id: str) -> dict[str, Any] | None:
        with self._lock:
            index = self._by_id.get(decision_id)
            return None if index is None else self._rows[index].record()

    def tail(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._rows[-n:] if n > 0 else []
        return [row.record() for row in rows]

    def query(self, filters: DecisionFilter, limit: int = 100,
              cursor: str | None = None) -> Page:
        check_limit(limit)
        before = decode_cursor(cursor)
        with self._lock:
            rows = list(self._rows)
        end = len(rows) if before is None else min(before - 1, len(rows))
        found: list[_Row] = []
        for index in range(end - 1, -1, -1):  # newest first
            if matches(filters, rows[index].columns):
                found.append(rows[index])
                if len(found) > limit:  # one extra tells us whether there is a next page
                    break
        more = len(found) > limit
        found = found[:limit]
        return Page(records=[row.record() for row in found],
                    next_cursor=encode_cursor(found[-1].stored.seq) if more else None)

    def iter_all(self) -> Iterator[dict[str, Any]]:
        for row in self.iter_stored():
            yield row.record()

    def iter_stored(self) -> Iterator[StoredRow]:
        with self._lock:
            rows = list(self._rows)
        for row in rows:
            yield row.stored

    def verify(self) -> ChainReport:
        with self._lock:
            rows = list(self._rows)
        checker = ChainChecker()
        for row in rows:
            if (report := checker.feed(row.record(), row.stored.text)) is not None:
                return report
        return checker.finish()

    def __enter__(self) -> MemoryDecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MemoryDecisionLog"]
