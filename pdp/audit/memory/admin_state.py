"""Admin state held in this process: what ``audit.backend = "memory"`` gets. Not durable."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Collection, Mapping

from pdp.audit.admin_state import AdminSnapshot, AdminWrite, changes


class MemoryAdminState:
    """:class:`~pdp.audit.admin_state.AdminStateStore` in a dict (tests, ``pdp check``)."""

    source = "memory"
    durable = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = secrets.token_hex(4)
        self._version = 0
        self._rows: dict[str, dict[str, str]] = {}

    def load(self) -> AdminSnapshot:
        with self._lock:
            return AdminSnapshot(self._epoch, self._version,
                                 {t: dict(r) for t, r in self._rows.items()})

    def version(self) -> tuple[str, int]:
        return self._epoch, self._version

    def write(self, topic: str, puts: Mapping[str, str] = {}, deletes: Collection[str] = (),
              *, only_new: bool = False) -> AdminWrite:
        with self._lock:
            rows = self._rows.setdefault(topic, {})
            before = {k: rows.get(k) for k in (*puts, *deletes)}
            changed = changes(before, puts, deletes, only_new=only_new)
            for key, body in changed.items():
                if body is None:
                    del rows[key]
                else:
                    rows[key] = body
            self._version += bool(changed)
            return AdminWrite(self._version, before)

    def close(self) -> None:
        pass


__all__ = ["MemoryAdminState"]
