"""Console sessions: who signed in, until when, and the CSRF token of their forms.

The browser holds only the session id, a random 256-bit value in an ``HttpOnly``,
``SameSite=Lax`` cookie scoped to ``/console`` (``Lax``, not ``Strict``: a browser
coming back from the OpenID provider's site would not send a ``Strict`` cookie on
the redirect that follows the sign-in). Nothing the browser sends is trusted beyond
finding the session: the principal, its credential and its expiry are kept on the
server.

**Where.** Sessions are rows in the store beside the decision log
(:mod:`pdp.audit.console_sessions`: the same SQLite file or PostgreSQL schema), so
every ``--workers`` process and every replica of that store knows every session, a
restart keeps them, and a sign-out on one ends the session on all. What a row holds
cannot be used by someone who reads the database:

- the key is a hash of the id (:func:`id_hash`), never the id;
- the credential (an OIDC ID token) is sealed with AES-GCM under a key derived
  from the id (HKDF-SHA256), bound to that row: only a request bearing the
  cookie can open it, and a row altered or moved to another id fails to open
  (the session is then refused and deleted);
- the CSRF token is not stored at all: it is derived from the id (:func:`csrf_of`),
  so every worker computes the same token, and it reveals nothing of the id.

**When a session ends** is decided on every read, by this process's clock: at
``ttl`` after sign-in (or the ID token's own expiry), after ``idle`` without use,
or at sign-out. A use is written back (the idle timer restarts) at most every
:data:`TOUCH_EVERY`, so a busy page costs no write per request. A store that
cannot be read refuses the session (:class:`SessionsUnavailable`): never a page
without knowing who asks.

Every state-changing form carries the session's CSRF token (compared in constant
time) and must come from this origin (``Origin``); ``SameSite`` alone would leave
older browsers and same-site subdomains open.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pdp.audit.console_sessions import SessionRow, SessionRows
from pdp.audit.errors import AuditUnavailable
from pdp.audit.records import normalize_ts
from pdp.identity.model import BearerToken, Credential

COOKIE = "pdp_console"
"""The session cookie's name."""

DEFAULT_TTL = timedelta(hours=8)
"""How long a session lasts from sign-in (a working day), whatever it does meanwhile."""

DEFAULT_IDLE = timedelta(minutes=30)
"""A session unused this long ends."""

TOUCH_EVERY = timedelta(seconds=30)
"""A use is written back at most this often (the idle timeout is that much coarser)."""


class SessionsUnavailable(Exception):
    """The session store cannot be read or written: nobody is let in, nothing changes."""


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


def id_hash(session_id: str) -> str:
    """The key a session is stored under: SHA-256 of its id (hex)."""
    return hashlib.sha256(b"pdp-console/session\0" + session_id.encode()).hexdigest()


def csrf_of(session_id: str) -> str:
    """The session's CSRF token: a hash of its id under another label than :func:`id_hash`
    (the same on every worker; a page showing it reveals neither the id nor the key)."""
    digest = hashlib.sha256(b"pdp-console/csrf\0" + session_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _sealing_key(session_id: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"pdp-console/credential").derive(session_id.encode())


def seal(session_id: str, token: str) -> str:
    """``token`` encrypted under the session id, bound to its row (``nonce || ciphertext``)."""
    nonce = secrets.token_bytes(12)
    box = AESGCM(_sealing_key(session_id)).encrypt(nonce, token.encode(),
                                                   id_hash(session_id).encode())
    return base64.urlsafe_b64encode(nonce + box).decode()


def unseal(session_id: str, sealed: str) -> str:
    """The token :func:`seal` sealed; ``ValueError`` for anything else (bad bytes, another
    session's box, a tampered row)."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        plain = AESGCM(_sealing_key(session_id)).decrypt(raw[:12], raw[12:],
                                                         id_hash(session_id).encode())
        return plain.decode()
    except (InvalidTag, ValueError, UnicodeError) as e:
        raise ValueError("the session's credential does not open") from e


class SessionStore:
    """Sessions kept in ``rows`` (shared by every worker of the store); each ends at
    ``ttl`` after sign-in or ``idle`` after its last use, and at sign-out."""

    def __init__(self, rows: SessionRows, clock: Callable[[], datetime], *,
                 ttl: timedelta = DEFAULT_TTL, idle: timedelta = DEFAULT_IDLE,
                 max_sessions: int = 10_000) -> None:
        self.rows = rows
        self._clock = clock
        self.ttl = ttl
        self.idle = idle
        self.max_sessions = max_sessions

    def create(self, *, principal: str, credential: Credential | None = None,
               dev_principal: str | None = None, groups: tuple[str, ...] = (),
               expires: datetime | None = None) -> Session:
        """A new session (a fresh id: never one the browser proposed, so no fixation).

        ``expires`` shortens the session, e.g. to the ID token's own expiry. Raises
        :class:`SessionsUnavailable` when it could not be stored (then nobody is signed in).
        """
        if credential is not None and not isinstance(credential, BearerToken):
            raise ValueError("a console session keeps a bearer token (the ID token) only")
        now = self._clock()
        end = now + self.ttl if expires is None else min(now + self.ttl, expires)
        session_id = secrets.token_urlsafe(32)
        session = Session(id=session_id, csrf=csrf_of(session_id), principal=principal,
                          created=now, expires=end, last_seen=now, credential=credential,
                          dev_principal=dev_principal, groups=groups)
        row = SessionRow(
            id_hash=id_hash(session_id), principal=principal, groups=groups,
            created=normalize_ts(now), expires=normalize_ts(end), last_seen=normalize_ts(now),
            dev_principal=dev_principal,
            sealed=seal(session_id, credential.token) if credential is not None else None)
        try:
            self.rows.purge(normalize_ts(now), normalize_ts(now - self.idle))
            self.rows.put(row, max_rows=self.max_sessions)
        except AuditUnavailable as e:
            raise SessionsUnavailable(str(e)) from e
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown, expired, idle, or its row does
        not open). Raises :class:`SessionsUnavailable` when the store cannot say."""
        if not session_id or len(session_id) > 128:
            return None
        now = self._clock()
        key = id_hash(session_id)
        try:
            row = self.rows.get(key)
            if row is None:
                return None
            session = self._session(session_id, row)
            if session is None or now >= session.expires or now - session.last_seen >= self.idle:
                self.rows.delete(key)
                return None
            if now - session.last_seen >= TOUCH_EVERY:
                self.rows.touch(key, normalize_ts(now))
        except AuditUnavailable as e:
            raise SessionsUnavailable(str(e)) from e
        return session

    def end(self, session_id: str | None) -> None:
        """Sign out: delete the session for every worker (unknown ids are fine)."""
        if session_id:
            try:
                self.rows.delete(id_hash(session_id))
            except AuditUnavailable as e:
                raise SessionsUnavailable(str(e)) from e

    def __len__(self) -> int:
        """Sessions stored, live or not yet purged."""
        return self.rows.count()

    @staticmethod
    def _session(session_id: str, row: SessionRow) -> Session | None:
        credential: Credential | None = None
        try:
            if row.sealed is not None:
                credential = BearerToken(unseal(session_id, row.sealed))
            created, expires, seen = (_time(row.created), _time(row.expires),
                                      _time(row.last_seen))
        except ValueError:
            return None  # a row that does not open is no session
        if credential is None and row.dev_principal is None:
            return None
        return Session(id=session_id, csrf=csrf_of(session_id), principal=row.principal,
                       created=created, expires=expires, last_seen=seen,
                       credential=credential, dev_principal=row.dev_principal,
                       groups=row.groups)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether a form's (or htmx header's) token is this session's, in constant time."""
    return bool(presented) and secrets.compare_digest(session.csrf.encode(),
                                                      (presented or "").encode())


__all__ = ["COOKIE", "DEFAULT_IDLE", "DEFAULT_TTL", "TOUCH_EVERY", "Session", "SessionStore",
           "SessionsUnavailable", "csrf_ok", "csrf_of", "id_hash", "seal", "unseal"]
