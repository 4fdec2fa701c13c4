"""The task registry: which tasks are open, and every credential issued for each.

Kept in the durable admin state (``context.durable``, topic ``tasks``), like
revocations and grants: committed to the decision log's store before an
exchange answers, visible to every replica (Redis fan-out, polling), and still
there after a restart. Rows::

    tasks   task:<id>           Task         (owner, purpose, opened, completed)
    tasks   cred:<id>:<jti>     IssuedCredential  (one per exchange; never the token)

Completing a task marks it completed, then revokes every credential issued for
it through the revocation store (``jti`` entries scoped to the broker's issuer),
so every replica refuses them on its next request. The race with an exchange on
another replica is closed by order: an exchange commits its credential row
*then* re-reads the task (:meth:`TaskRegistry.record`); completion commits the
mark *then* re-reads the credentials. Whichever commits second sees the other.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from context.revocations import RevocationStore, new_revocation

if TYPE_CHECKING:
    from context.admin_store import AdminSnapshot
    from context.durable import DurableState

log = logging.getLogger("pdp.broker.tasks")
TOPIC = "tasks"


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    purpose: str
    owner: str                       # the principal that opened it (the first subject)
    opened_at: str                   # ISO 8601 UTC
    completed_at: str | None = None
    completed_by: str | None = None

    @property
    def live(self) -> bool:
        return self.completed_at is None


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """What the registry keeps of an issued credential: its facts, never the token."""

    task_id: str
    jti: str
    subject: str
    actor_chain: tuple[str, ...]     # current actor first
    audience: str
    scopes: tuple[str, ...]
    issued_at: str
    expires_at: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "actor_chain": list(self.actor_chain),
                "scopes": list(self.scopes)}


class TaskClosed(Exception):
    """The task was completed: nothing more is issued for it."""


class TaskRegistry:
    """Tasks and their credentials, from the durable copy (thread-safe reads)."""

    def __init__(self, durable: DurableState, revocations: RevocationStore, *,
                 issuer: str, leeway_s: int = 60) -> None:
        self.durable = durable
        self.revocations = revocations
        self.issuer = issuer
        self.leeway_s = leeway_s
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._credentials: dict[str, list[IssuedCredential]] = {}
        self._parsed: dict[str, tuple[str, Task | IssuedCredential]] = {}
        durable.subscribe(self._load)

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def tasks(self, *, include_completed: bool = False) -> list[Task]:
        tasks = sorted(self._tasks.values(), key=lambda t: (t.opened_at, t.id))
        return [t for t in tasks if include_completed or t.live]

    def credentials(self, task_id: str) -> list[IssuedCredential]:
        return list(self._credentials.get(task_id, ()))

    def record(self, credential: IssuedCredential, *, opening: Task | None = None) -> None:
        """Commit ``credential`` to its task, opening the task (``opening``) unless it
        exists, in one transaction; :class:`TaskClosed` (and the credential revoked) when
        the task was completed before or meanwhile (blocking I/O)."""
        puts = {_cred_key(credential): _dump(credential.to_json())}
        if opening is not None:
            puts[_task_key(opening.id)] = _dump(asdict(opening))
        # only_new: an existing task row (its owner, its completion) is never overwritten;
        # a credential's key holds its unique jti.
        self.durable.write(TOPIC, puts, only_new=True)
        task = self._tasks.get(credential.task_id)
        if task is not None and not task.live:
            self._revoke([credential], by=task.completed_by, task_id=task.id)
            raise TaskClosed(f"task {task.id} was completed at {task.completed_at}")

    def forget(self, credential: IssuedCredential, *, opened: bool) -> None:
        """Remove the row of a credential that was not issued after all (its decision
        denied: the log refused it, or a reload or revocation came in between), and the
        task it ``opened`` if no other credential was issued for it meanwhile."""
        self.durable.write(TOPIC, deletes=(_cred_key(credential),))
        task = self._tasks.get(credential.task_id)
        if opened and task is not None and task.live and not self.credentials(task.id):
            self.durable.write(TOPIC, deletes=(_task_key(task.id),))

    def complete(self, task_id: str, *, by: str, now: datetime
                 ) -> tuple[Task, list[IssuedCredential]]:
        """Mark the task completed and revoke every credential issued for it (idempotent;
        KeyError for an unknown task; blocking I/O)."""
        task = self._tasks.get(task_id)
        if task is None:
            raise KeyError(task_id)
        if task.live:
            done = replace(task, completed_at=_iso(now), completed_by=by)
            self.durable.write(TOPIC, {_task_key(task_id): _dump(asdict(done))})
            task = self._tasks.get(task_id, done)
        credentials = self.credentials(task_id)
        self._revoke(credentials, by=task.completed_by, task_id=task_id)
        return task, credentials

    def _revoke(self, credentials: list[IssuedCredential], *, by: str | None,
                task_id: str) -> None:
        for c in credentials:
            expires = datetime.fromisoformat(c.expires_at) + timedelta(seconds=self.leeway_s)
            self.revocations.add(new_revocation(
                "jti", c.jti, issuer=self.issuer, reason=f"task {task_id} completed",
                created_by=by, expires_at=expires))

    def _load(self, snap: AdminSnapshot) -> None:
        tasks: dict[str, Task] = {}
        credentials: dict[str, list[IssuedCredential]] = {}
        parsed: dict[str, tuple[str, Task | IssuedCredential]] = {}
        for key, body in snap.rows(TOPIC).items():
            known = self._parsed.get(key)
            try:  # a row parsed before (same body) is not parsed again
                row = known[1] if known is not None and known[0] == body else _row(key, body)
            except (ValueError, KeyError, TypeError) as e:
                log.warning("ignoring malformed task row %s: %s", key, e)
                continue
            parsed[key] = (body, row)
            if isinstance(row, Task):
                tasks[row.id] = row
            else:
                credentials.setdefault(row.task_id, []).append(row)
        for rows in credentials.values():
            rows.sort(key=lambda c: c.issued_at)
        with self._lock:
            self._tasks, self._credentials, self._parsed = tasks, credentials, parsed


def _row(key: str, body: str) -> Task | IssuedCredential:
    data = json.loads(body)
    if key.startswith("task:"):
        return Task(**data)
    if key.startswith("cred:"):
        return _credential(data)
    raise ValueError("neither task: nor cred:")


def _credential(data: Mapping[str, Any]) -> IssuedCredential:
    return IssuedCredential(**{**data, "actor_chain": tuple(data["actor_chain"]),
                               "scopes": tuple(data["scopes"])})


def _task_key(task_id: str) -> str:
    return f"task:{task_id}"


def _cred_key(credential: IssuedCredential) -> str:
    return f"cred:{credential.task_id}:{credential.jti}"


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


__all__ = ["IssuedCredential", "Task", "TaskClosed", "TaskRegistry"]
