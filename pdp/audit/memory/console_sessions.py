"""Console sessions held in this process: what ``audit.backend = "memory"`` gets.

Not shared and not durable: with the in-memory log nothing else is either
(tests, a ``--dev`` server without a file).
"""

from __future__ import annotations

import threading
from dataclasses import replace

from pdp.audit.console_sessions import SessionRow


class MemorySessionRows:
    """:class:`~pdp.audit.console_sessions.SessionRows` in a dict."""

    source = "memory"
    durable = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, SessionRow] = {}

    def put(self, row: SessionRow, *, max_rows: int) -> None:
        with self._lock:
            while len(self._rows) >= max_rows:  # the least recently seen go first
                oldest = min(self._rows.values(), key=lambda r: r.last_seen)
                del self._rows[oldest.id_hash]
            self._rows[row.id_hash] = row

    def get(self, id_hash: str) -> SessionRow | None:
        with self._lock:
            return self._rows.get(id_hash)

    def touch(self, id_hash: str, last_seen: str) -> None:
        with self._lock:
            row = self._rows.get(id_hash)
            if row is not None and row.last_seen < last_seen:
                self._rows[id_hash] = replace(row, last_seen=last_seen)

    def delete(self, id_hash: str) -> None:
        with self._lock:
            self._rows.pop(id_hash, None)

    def purge(self, now: str, idle_since: str) -> int:
        with self._lock:
            gone = [k for k, r in self._rows.items()
                    if r.expires <= now or r.last_seen <= idle_since]
            for key in gone:
                del self._rows[key]
            return len(gone)

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["MemorySessionRows"]
