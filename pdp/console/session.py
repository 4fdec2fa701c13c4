"""Console sessions: who signed in, until when, and the CSRF token of their forms.

A session lives on the server, in this process (:class:`SessionStore`); the
browser holds only its id, a random 256-bit value in an ``HttpOnly``,
``SameSite=Lax`` cookie scoped to ``/console`` (``Lax``, not ``Strict``: a browser
coming back from the OpenID provider's site would not send a ``Strict`` cookie on
the redirect that follows the sign-in). Nothing the browser sends
is trusted beyond finding the session: the principal, its credential and its
expiry stay here. A restart (or another ``--workers`` process) does not know the
id, so the person signs in again: a session never outlives the process that
issued it.

Every state-changing form carries the session's CSRF token (a second random
value, compared in constant time) and must come from this origin (``Origin``);
``SameSite`` alone would leave older browsers and same-site subdomains open.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pdp.identity.model import Credential

COOKIE = "pdp_console"
"""The session cookie's name."""

DEFAULT_TTL = timedelta(hours=8)
"""How long a session lasts from sign-in (a working day), whatever it does meanwhile."""

DEFAULT_IDLE = timedelta(minutes=30)
"""A session unused this long ends."""


@dataclass(frozen=True, slots=True)
class Session:
    """One signed-in person.

    ``credential`` is what each page is authorized with (the OIDC ID token);
    ``dev_principal`` instead names the workload a ``--dev`` sign-in chose, for
    which a fresh dev JWT-SVID is minted at every request.
    """

    id: str
    csrf: str
    principal: str
    created: datetime
    expires: datetime
    last_seen: datetime
    credential: Credential | None = None
    dev_principal: str | None = None
    groups: tuple[str, ...] = field(default=())


class SessionStore:
    """Sessions of this process, by id; each ends at ``ttl`` after sign-in or ``idle``
    after its last use, and at sign-out."""

    def __init__(self, clock: Callable[[], datetime], *, ttl: timedelta = DEFAULT_TTL,
                 idle: timedelta = DEFAULT_IDLE, max_sessions: int = 10_000) -> None:
        self._clock = clock
        self.ttl = ttl
        self.idle = idle
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, *, principal: str, credential: Credential | None = None,
               dev_principal: str | None = None, groups: tuple[str, ...] = (),
               expires: datetime | None = None) -> Session:
        """A new session (a fresh id: never one the browser proposed, so no fixation).

        ``expires`` shortens the session, e.g. to the ID token's own expiry."""
        now = self._clock()
        end = now + self.ttl if expires is None else min(now + self.ttl, expires)
        session = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                          principal=principal, created=now, expires=end, last_seen=now,
                          credential=credential, dev_principal=dev_principal, groups=groups)
        with self._lock:
            self._drop_expired(now)
            if len(self._sessions) >= self.max_sessions:  # bounded: the oldest goes first
                oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle timer restarted), or None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now >= session.expires or now - session.last_seen >= self.idle:
                del self._sessions[session_id]
                return None
            session = replace(session, last_seen=now)
            self._sessions[session_id] = session
            return session

    def end(self, session_id: str | None) -> None:
        """Sign out: forget the session (unknown ids are fine)."""
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _drop_expired(self, now: datetime) -> None:
        for sid in [s.id for s in self._sessions.values()
                    if now >= s.expires or now - s.last_seen >= self.idle]:
            del self._sessions[sid]


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether a form's (or htmx header's) token is this session's, in constant time."""
    return bool(presented) and secrets.compare_digest(session.csrf.encode(),
                                                      (presented or "").encode())


__all__ = ["COOKIE", "DEFAULT_IDLE", "DEFAULT_TTL", "Session", "SessionStore", "csrf_ok"]
