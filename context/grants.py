"""Where task grants live: a small store, persisted as one JSON file.

Grants are administrative state like revocations: created and revoked through
the admin API, read by every decision. The file is rewritten atomically
(write, fsync, rename) on each change, so a crash never leaves half a grant.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path

from pdp.engine.grants import Grant


class GrantStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self.version = 0
        if path is not None and path.exists():
            doc = json.loads(path.read_text())
            self._grants = {g["id"]: Grant.from_dict(g) for g in doc.get("grants", [])}

    def add(self, grant: Grant) -> Grant:
        with self._lock:
            if grant.id in self._grants:
                raise ValueError(f"grant {grant.id} exists")
            self._grants[grant.id] = grant
            self._save()
        return grant

    def revoke(self, grant_id: str, at: datetime) -> Grant | None:
        """Revoke a grant; None if there is no such grant. Revoking twice keeps the first time."""
        from dataclasses import replace

        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is None:
                return None
            if grant.revoked_at is None:
                grant = replace(grant, revoked_at=at)
                self._grants[grant_id] = grant
                self._save()
            return grant

    def get(self, grant_id: str) -> Grant | None:
        return self._grants.get(grant_id)

    def all(self) -> list[Grant]:
        return sorted(self._grants.values(), key=lambda g: g.created_at)

    def active(self, now: datetime) -> tuple[Grant, ...]:
        return tuple(g for g in self._grants.values() if g.active(now))

    def _save(self) -> None:
        self.version += 1
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump({"grants": [g.as_dict() for g in self.all()]}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
