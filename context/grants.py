"""Where task grants live: a small store, kept in the durable admin state.

Grants are administrative state like revocations: created and revoked through
the admin API, read by every decision. With a ``DurableState``
(``context.durable``, what ``pdp serve`` uses) each change is committed to the
decision log's store before it is acknowledged and reaches every replica;
``grants.json`` from earlier releases is imported once and renamed
``grants.json.imported``. Without one (embedding, tests), the store keeps
``path`` as one JSON file, rewritten atomically (write, fsync, rename).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from context.admin_store import AdminSnapshot
from context.durable import DurableState, TopicRows
from pdp.engine.grants import Grant

log = logging.getLogger("pdp.context.grants")
TOPIC = "grants"


class GrantStore:
    def __init__(self, path: Path | None = None, *, durable: DurableState | None = None) -> None:
        self.path = path
        self.durable = durable
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self.version = 0
        legacy = _read_file(path) if path is not None and path.exists() else {}
        if durable is None:
            self._grants = legacy
            return
        if legacy and path is not None:
            durable.write(TOPIC, {g.id: _body(g) for g in legacy.values()}, only_new=True)
            path.rename(path.with_name(path.name + ".imported"))

        self._rows = TopicRows(TOPIC)
        durable.subscribe(self._load)

    def add(self, grant: Grant) -> Grant:
        with self._lock:
            if grant.id in self._grants:
                raise ValueError(f"grant {grant.id} exists")
            if self.durable is not None:
                result = self.durable.write(TOPIC, {grant.id: _body(grant)}, only_new=True)
                if result.before.get(grant.id) is not None:
                    raise ValueError(f"grant {grant.id} exists")
                return grant
            self._grants[grant.id] = grant
            self._save()
        return grant

    def revoke(self, grant_id: str, at: datetime) -> Grant | None:
        """Revoke a grant; None if there is no such grant. Revoking twice keeps the first time."""
        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is None:
                return None
            if grant.revoked_at is None:
                grant = replace(grant, revoked_at=at)
                if self.durable is not None:
                    self.durable.write(TOPIC, {grant_id: _body(grant)})
                    return grant
                self._grants[grant_id] = grant
                self._save()
            return grant

    def get(self, grant_id: str) -> Grant | None:
        return self._grants.get(grant_id)

    def all(self) -> list[Grant]:
        return sorted(self._grants.values(), key=lambda g: g.created_at)

    def active(self, now: datetime) -> tuple[Grant, ...]:
        return tuple(g for g in self._grants.values() if g.active(now))

    def _load(self, snap: AdminSnapshot) -> None:
        if not self._rows.moved(snap):
            return  # another topic changed
        grants = {}
        for key, body in snap.rows(TOPIC).items():
            try:
                grants[key] = Grant.from_dict(json.loads(body))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("ignoring malformed grant %s: %s", key, e)
        self._grants = grants
        self.version += 1

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


def _read_file(path: Path) -> dict[str, Grant]:
    doc = json.loads(path.read_text())
    return {g["id"]: Grant.from_dict(g) for g in doc.get("grants", [])}


def _body(grant: Grant) -> str:
    return json.dumps(grant.as_dict(), sort_keys=True)
