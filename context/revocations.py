"""Live revocations: credentials and workloads refused although they still verify.

Short-lived credentials make revocation rare, but an incident cannot wait for
expiry. A revocation is a small JSON-serializable :class:`RevocationEntry` of
one of five kinds:

=================  ==========================================  ==============================
kind               ``value``                                   refuses
=================  ==========================================  ==============================
``jti``            the token's ``jti``                         that token (of ``issuer`` if set)
``cert``           the certificate serial (hex)                that certificate of ``issuer`` (DN)
``spiffe_id``      a SPIFFE ID                                 the workload, as subject or actor
``spiffe_prefix``  ``spiffe://td`` or ``spiffe://td/path``     every ID at or under that path
``issued_before``  an issuer (``iss``, DN) or trust domain     everything it issued before ``before``
=================  ==========================================  ==============================

Entries live in a :class:`RevocationStore`. :class:`InMemoryRevocationStore`
serves one process; a shared backend (Redis, in ``context.redis_backend``)
implements the same small protocol so that every replica refuses the same
credentials. The verifier asks :meth:`RevocationStore.check` on every request,
verified-credential cache hits included, so a change takes effect on the very
next request. :class:`RevocationIndex` does the matching for any backend:
build it from ``list()`` and rebuild it when ``version`` changes.
"""  # noqa: E501 - a reStructuredText table, one row per line

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeGuard, get_args

RevocationKind = Literal["jti", "cert", "spiffe_id", "spiffe_prefix", "issued_before"]
KINDS: tuple[str, ...] = get_args(RevocationKind)
MAX_VALUE_LENGTH = 2048


class InvalidRevocation(ValueError):
    """The revocation request is incomplete or malformed; ``str(e)`` says what to fix."""


class CredentialFacts(Protocol):
    """What a revocation is matched against (``pdp.identity.VerifiedIdentity`` has it all)."""

    # Read-only properties, so that frozen dataclasses satisfy the protocol.
    @property
    def principal_id(self) -> str: ...
    @property
    def issuer(self) -> str: ...
    @property
    def trust_domain(self) -> str: ...
    @property
    def jti(self) -> str | None: ...
    @property
    def serial(self) -> str | None: ...
    @property
    def actor(self) -> str | None: ...
    @property
    def actor_chain(self) -> tuple[str, ...]: ...
    @property
    def issued_at(self) -> datetime | None: ...
    @property
    def not_before(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    """One revocation. ``id`` is derived from what it refuses, so adding it twice is a no-op.

    - ``issuer``: for ``jti``, optionally the token issuer it is scoped to; for
      ``cert``, the issuer DN (RFC 4514, as the decision log records it), required.
    - ``before``: for ``issued_before``, the cut-off (credentials issued earlier are refused).
    - ``expires_at``: optional; after it the entry no longer applies (e.g. the
      longest lifetime of what it revokes), and a store may drop it.
    """

    id: str
    kind: RevocationKind
    value: str
    issuer: str | None = None
    before: datetime | None = None
    reason: str = ""
    created_by: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None

    def applies_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        """A JSON object (datetimes as ISO 8601 UTC strings)."""
        return {"id": self.id, "kind": self.kind, "value": self.value, "issuer": self.issuer,
                "before": _iso(self.before), "reason": self.reason,
                "created_by": self.created_by, "created_at": _iso(self.created_at),
                "expires_at": _iso(self.expires_at)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RevocationEntry:
        """The inverse of :meth:`to_json`; the entry is validated again."""
        entry = new_revocation(
            data["kind"], data["value"], issuer=data.get("issuer"),
            before=_parse_time(data.get("before")), reason=data.get("reason") or "",
            created_by=data.get("created_by"), created_at=_parse_time(data.get("created_at")),
            expires_at=_parse_time(data.get("expires_at")))
        if data.get("id") not in (None, entry.id):
            raise InvalidRevocation(f"revocation id {data.get('id')!r} does not match its content")
        return entry


def new_revocation(
    kind: str, value: str, *, issuer: str | None = None, before: datetime | None = None,
    reason: str = "", created_by: str | None = None, created_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> RevocationEntry:
    """A validated, normalized entry, or :class:`InvalidRevocation`.

    Normalizes what two operators could spell differently: a certificate
    serial (``"0x1F"``, ``"00:1f"`` and ``"1f"`` are one serial, read as hex),
    a trailing ``/`` or ``/*`` of a prefix. SPIFFE IDs are checked for shape
    here; callers with the strict parser (the admin API) check them fully.
    """
    if not _is_kind(kind):
        raise InvalidRevocation(f"kind must be one of {', '.join(KINDS)}")
    value = _text(value, "value")
    issuer = _text(issuer, "issuer") if issuer is not None else None
    for name, at in (("before", before), ("created_at", created_at), ("expires_at", expires_at)):
        if at is not None and at.tzinfo is None:
            raise InvalidRevocation(f"{name} must carry a time zone")
    if kind == "cert":
        if issuer is None:
            raise InvalidRevocation("a certificate is named by its issuer DN and serial: "
                                    "give issuer")
        value = normalize_serial(value)
    elif kind in ("spiffe_id", "spiffe_prefix"):
        value = _spiffe_shape(value, prefix=kind == "spiffe_prefix")
    elif kind == "issued_before":
        if before is None:
            raise InvalidRevocation("issued_before needs `before` (a time with a zone)")
    if kind != "issued_before" and before is not None:
        raise InvalidRevocation("`before` applies only to kind issued_before")
    if kind not in ("jti", "cert") and issuer is not None:
        raise InvalidRevocation("`issuer` applies only to kinds jti and cert")
    return RevocationEntry(
        id=revocation_id(kind, value, issuer, before), kind=kind,
        value=value, issuer=issuer, before=before, reason=reason or "",
        created_by=created_by, created_at=created_at or datetime.now(UTC),
        expires_at=expires_at)


def _is_kind(kind: str) -> TypeGuard[RevocationKind]:
    return kind in KINDS


def revocation_id(kind: str, value: str, issuer: str | None, before: datetime | None) -> str:
    """``rev-`` and 16 hex digits of SHA-256 over what the entry refuses."""
    material = "\0".join((kind, value, issuer or "", _iso(before) or ""))
    return "rev-" + hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def normalize_serial(value: str) -> str:
    """A certificate serial as lowercase hex without leading zeros (``0x``/``:`` allowed)."""
    text = value.strip().lower().replace(":", "")
    text = text[2:] if text.startswith("0x") else text
    try:
        return format(int(text, 16), "x")
    except ValueError:
        raise InvalidRevocation(f"serial {value!r} is not hexadecimal") from None


class RevocationIndex:
    """The entries of a store arranged for matching one credential in O(1) per kind.

    Pure and immutable: any backend builds one from its entries and keeps it
    until its ``version`` changes.
    """

    def __init__(self, entries: Iterable[RevocationEntry]) -> None:
        self._jti: dict[str, list[RevocationEntry]] = {}
        self._cert: dict[tuple[str, str], RevocationEntry] = {}
        self._ids: dict[str, RevocationEntry] = {}
        self._prefixes: list[RevocationEntry] = []
        self._before: dict[str, list[RevocationEntry]] = {}
        for e in entries:
            if e.kind == "jti":
                self._jti.setdefault(e.value, []).append(e)
            elif e.kind == "cert":
                self._cert[(e.issuer or "", e.value)] = e
            elif e.kind == "spiffe_id":
                self._ids[e.value] = e
            elif e.kind == "spiffe_prefix":
                self._prefixes.append(e)
            else:
                self._before.setdefault(e.value, []).append(e)

    def match(self, facts: CredentialFacts, now: datetime) -> RevocationEntry | None:
        """The first entry in force at ``now`` that refuses ``facts``, or None."""
        for entry in self._candidates(facts):
            if entry.applies_at(now):
                return entry
        return None

    def _candidates(self, facts: CredentialFacts) -> Iterable[RevocationEntry]:
        if facts.jti is not None:
            for e in self._jti.get(facts.jti, ()):
                if e.issuer is None or e.issuer == facts.issuer:
                    yield e
        if facts.serial is not None:
            cert = self._cert.get((facts.issuer, facts.serial))
            if cert is not None:
                yield cert
        # The subject, the current actor and earlier actors: a revoked workload
        # may not act, nor be acted for, nor appear anywhere in a delegation chain.
        names = [facts.principal_id, *([facts.actor] if facts.actor else []),
                 *facts.actor_chain]
        for name in names:
            if name in self._ids:
                yield self._ids[name]
            for e in self._prefixes:
                if name == e.value or name.startswith(e.value + "/"):
                    yield e
        if self._before:
            issued = facts.issued_at or facts.not_before
            for key in dict.fromkeys((facts.issuer, facts.trust_domain,
                                      f"spiffe://{facts.trust_domain}")):
                for e in self._before.get(key, ()) if key else ():
                    # Without an issue time we cannot tell: fail closed.
                    if issued is None or (e.before is not None and issued < e.before):
                        yield e


class RevocationStore(Protocol):
    """Where revocations live. Small on purpose: a Redis backend implements the same five.

    ``version`` grows on every change, in this process or (for a shared store)
    in any replica, so that a caller can rebuild what it derived from ``list()``.
    """

    @property
    def version(self) -> int:
        """A counter that changes whenever an entry is added or removed."""
        ...

    def add(self, entry: RevocationEntry) -> tuple[RevocationEntry, bool]:
        """Store ``entry``; return the stored entry and True, or the existing one and False."""
        ...

    def remove(self, entry_id: str) -> RevocationEntry | None:
        """Remove the entry ``entry_id``; return it, or None if there was none."""
        ...

    def list(self) -> list[RevocationEntry]:
        """Every entry, oldest first."""
        ...

    def check(self, facts: CredentialFacts, now: datetime) -> RevocationEntry | None:
        """The entry that refuses ``facts`` at ``now``, or None. Called on every request."""
        ...


class InMemoryRevocationStore:
    """Revocations held in this process (the default; one replica)."""

    def __init__(self, entries: Iterable[RevocationEntry] = ()) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, RevocationEntry] = {e.id: e for e in entries}
        self._index = RevocationIndex(self._entries.values())
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def add(self, entry: RevocationEntry) -> tuple[RevocationEntry, bool]:
        with self._lock:
            existing = self._entries.get(entry.id)
            if existing is not None:
                return existing, False
            self._entries[entry.id] = entry
            self._changed()
            return entry, True

    def remove(self, entry_id: str) -> RevocationEntry | None:
        with self._lock:
            entry = self._entries.pop(entry_id, None)
            if entry is not None:
                self._changed()
            return entry

    def list(self) -> list[RevocationEntry]:
        with self._lock:
            return list(self._entries.values())

    def check(self, facts: CredentialFacts, now: datetime) -> RevocationEntry | None:
        return self._index.match(facts, now)  # an immutable index: no lock needed

    def _changed(self) -> None:
        self._index = RevocationIndex(self._entries.values())
        self._version += 1


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRevocation(f"{name} must be a non-empty string")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidRevocation(f"{name} is longer than {MAX_VALUE_LENGTH} characters")
    return value.strip()


def _spiffe_shape(value: str, *, prefix: bool) -> str:
    if prefix:
        value = value.removesuffix("/*").rstrip("/") if value.endswith(("/*", "/")) else value
    if not value.startswith("spiffe://") or len(value) <= len("spiffe://"):
        raise InvalidRevocation(f"{value!r} is not a SPIFFE ID (spiffe://trust-domain/path)")
    if not prefix and "/" not in value[len("spiffe://"):]:
        raise InvalidRevocation(f"{value!r} names a trust domain; revoke it with kind "
                                "spiffe_prefix")
    return value


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at is not None else None


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRevocation(f"{value!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise InvalidRevocation(f"{value!r} has no time zone")
    return at


__all__ = [
    "CredentialFacts", "InMemoryRevocationStore", "InvalidRevocation", "KINDS",
    "RevocationEntry", "RevocationIndex", "RevocationKind", "RevocationStore",
    "new_revocation", "normalize_serial", "revocation_id",
]
