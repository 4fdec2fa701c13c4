"""The trust anchors in force, refreshed from their sources on a schedule.

One SPIFFE bundle per trust domain and one JWKS per OAuth issuer, each read
from a :mod:`~pdp.identity.fetch` source: a file, a bundle endpoint or
``jwks_uri``, or an issuer's discovery document. Each source is read again
when its interval has passed (its configured interval, else the bundle's
``spiffe_refresh_hint``, else five minutes): a failed read or an invalid
document keeps the last good copy (and is retried sooner, backing off up to a
minute), and a bundle whose ``spiffe_sequence`` went down is refused. A token
with an unknown ``kid`` never triggers a fetch, or anyone could make us hammer
the key server (or fill the log) by minting random kids.

"Last good" is bounded: a source whose last good read is older than its
maximum age (``max_age_s``; default :func:`default_max_age_s`, 24 h for the
usual refresh hints) is *stale*, and :meth:`TrustStore.check_fresh` refuses
every credential it would verify (``identity.trust_stale``) until a read
succeeds again: keys that nobody could confirm for a day may have been
rotated out because they leaked.

Every source has a :class:`SourceStatus` (``ok``, ``stale``, last success,
last error) for ``/readyz`` and the metrics.
Ref: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md#5-spiffe-bundle-endpoint
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pdp.identity.errors import TrustStale
from pdp.identity.fetch import FileSource, KeyDocumentSource
from pdp.identity.jwk import JwtKey
from pdp.identity.jwks import parse_jwks
from pdp.identity.oauth_jwt import OAuthIssuer
from pdp.identity.trust_bundle import (
    DEFAULT_REFRESH_S,
    BundleError,
    TrustBundle,
    check_successor,
    load_bundle_file,
    parse_spiffe_bundle,
)

RETRY_AFTER_FAILURE_S = 60
"""Longest wait before retrying a failed source (the retries back off 1, 2, 4 ... 60 s)."""

DEFAULT_MAX_AGE_S = 86400
"""Least default maximum age of a source's last good copy: a day of failed refreshes."""
MAX_AGE_REFRESHES = 12
"""The default maximum age is at least this many refresh intervals."""

log = logging.getLogger("pdp.identity")

SourceKind = Literal["bundle", "jwks"]
SourceKey = tuple[SourceKind, str]
"""``("bundle", trust domain)`` or ``("jwks", issuer name)``."""


def default_max_age_s(interval_s: int) -> int:
    """24 h, or twelve refresh intervals when that is longer (a bundle whose
    ``spiffe_refresh_hint`` is a day must survive more than one missed refresh)."""
    return max(DEFAULT_MAX_AGE_S, MAX_AGE_REFRESHES * interval_s)


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the anchors of one trust domain (``bundle``) or issuer (``jwks``) come from.

    - ``interval_s``: seconds between reads; None: the bundle's
      ``spiffe_refresh_hint`` (bundles) or five minutes.
    - ``required``: a failure at start raises instead of starting without keys
      (files: a typo in a path is a configuration error, not an outage).
    - ``max_age_s``: past this many seconds since the last good read the source is
      stale and verifies nothing; None: :func:`default_max_age_s` of its interval.
    - ``unavailable_until_read``: until its first good read, :meth:`TrustStore.check_fresh`
      refuses what the source would verify (``identity.trust_stale``, naming the last
      error) rather than leaving it to fail on a missing key: the Workload API, whose
      absence at start is an outage to name, not a configuration to guess at.
    """

    kind: SourceKind
    name: str  # trust domain, or issuer name
    reader: KeyDocumentSource
    interval_s: int | None = None
    required: bool = False
    max_age_s: int | None = None
    unavailable_until_read: bool = False

    @property
    def key(self) -> SourceKey:
        return (self.kind, self.name)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How a source fared: shown on ``/readyz`` and in ``pdp_identity_source_up``."""

    source: str  # "bundle:<trust domain>" or "jwks:<issuer name>"
    kind: SourceKind
    name: str
    location: str
    ok: bool
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    failures: int = 0  # failed reads since start
    next_due: datetime | None = None
    max_age_s: int | None = None  # in force: the configured or default maximum age
    stale: bool = False  # the last good copy is older than max_age_s: it verifies nothing

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "name": self.name,
                "location": self.location, "ok": self.ok, "stale": self.stale,
                "max_age_s": self.max_age_s,
                "last_attempt": _iso(self.last_attempt),
                "last_success": _iso(self.last_success), "last_error": self.last_error,
                "failures": self.failures, "next_due": _iso(self.next_due)}


StatusObserver = Callable[[SourceStatus], None]


@dataclass(slots=True)
class _Source:
    spec: KeySource
    status: SourceStatus
    consecutive_failures: int = 0

    @property
    def due(self) -> datetime | None:
        return self.status.next_due


class TrustStore:
    """Bundles by trust domain and issuers (with their keys) by name.

    ``extra_jwt_keys`` are JWT authorities added to a trust domain's bundle on
    every load, e.g. the dev issuer's key for ``example.org``. ``version`` grows
    whenever the anchors change, so caches of verified credentials can be dropped.
    """

    def __init__(
        self,
        *,
        bundles: Mapping[str, TrustBundle],
        issuers: Sequence[OAuthIssuer] = (),
        bundle_files: Mapping[str, Path] | None = None,
        jwks_files: Mapping[str, Path] | None = None,
        extra_jwt_keys: Mapping[str, Mapping[str, JwtKey]] | None = None,
        sources: Sequence[KeySource] = (),
        observer: StatusObserver | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._extra = {td: dict(keys) for td, keys in (extra_jwt_keys or {}).items()}
        self._bundles = MappingProxyType(
            {td: self._with_extra(b) for td, b in {**self._extra_only(), **bundles}.items()})
        self._issuers: tuple[OAuthIssuer, ...] = tuple(issuers)
        specs = (
            [KeySource("bundle", td, FileSource(p)) for td, p in (bundle_files or {}).items()]
            + [KeySource("jwks", n, FileSource(p)) for n, p in (jwks_files or {}).items()]
            + list(sources))
        self._sources = [_Source(s, _initial_status(s, ok=True)) for s in specs]
        self._by_key = {s.spec.key: s for s in self._sources}
        self._observer = observer
        self.version = 0

    @classmethod
    def from_files(
        cls,
        *,
        bundle_files: Mapping[str, Path],
        issuers: Sequence[OAuthIssuer] = (),
        jwks_files: Mapping[str, Path] | None = None,
        extra_jwt_keys: Mapping[str, Mapping[str, JwtKey]] | None = None,
    ) -> TrustStore:
        """Load every bundle file now; an unreadable or invalid one raises :class:`BundleError`."""
        bundles = {td: load_bundle_file(path, td) for td, path in bundle_files.items()}
        return cls(bundles=bundles, issuers=issuers, bundle_files=bundle_files,
                   jwks_files=jwks_files, extra_jwt_keys=extra_jwt_keys)

    @classmethod
    def load(
        cls,
        sources: Sequence[KeySource],
        *,
        issuers: Sequence[OAuthIssuer] = (),
        extra_jwt_keys: Mapping[str, Mapping[str, JwtKey]] | None = None,
        observer: StatusObserver | None = None,
        now: datetime | None = None,
    ) -> TrustStore:
        """Read every source now. A ``required`` source that fails raises :class:`BundleError`;
        any other failure starts that domain or issuer with no keys (every credential
        it vouches for is refused) and is retried on the first :meth:`refresh`."""
        now = now or datetime.now(UTC)
        store = cls(bundles={}, issuers=issuers, extra_jwt_keys=extra_jwt_keys,
                    sources=sources, observer=observer)
        for source in store._sources:
            if source.spec.kind == "bundle" and source.spec.name not in store._bundles:
                # Fail closed until the first good read: the domain is known, with no keys.
                store._bundles = MappingProxyType({
                    **store._bundles,
                    source.spec.name: store._with_extra(TrustBundle(source.spec.name))})
            error = store._reload(source, now, initial=True)
            if error is not None and source.spec.required:
                raise BundleError(error)
        store.version = 0
        return store

    @property
    def bundles(self) -> Mapping[str, TrustBundle]:
        """The current bundle of each trusted domain (a read-only snapshot)."""
        return self._bundles

    @property
    def issuers(self) -> tuple[OAuthIssuer, ...]:
        """The trusted OAuth issuers with their current keys."""
        return self._issuers

    @property
    def has_sources(self) -> bool:
        return bool(self._sources)

    def statuses(self, now: datetime | None = None) -> list[SourceStatus]:
        """Every source's status, in configuration order (``stale`` as of ``now``, if given)."""
        return [s.status if now is None else self._aged(s, now) for s in self._sources]

    def check_fresh(self, key: SourceKey | None, now: datetime) -> None:
        """Raise :class:`~pdp.identity.errors.TrustStale` when the source ``key`` is past its
        maximum age at ``now``. Anchors with no source (the dev issuer's key) and a source
        that never read successfully (it has no keys to trust) are not stale."""
        source = self._by_key.get(key) if key is not None else None
        if source is None:
            return
        if source.spec.unavailable_until_read and source.status.last_success is None:
            raise TrustStale(
                f"the {source.spec.kind} of {source.spec.name!r} has not been read yet from "
                f"{source.spec.reader.location} "
                f"({source.status.last_error or 'no read attempted yet'})",
                reason="trust-unavailable")
        status = self._aged(source, now)
        if status.stale:
            assert status.last_success is not None
            age = (now - status.last_success).total_seconds()
            raise TrustStale(
                f"the {source.spec.kind} of {source.spec.name!r} was last refreshed "
                f"{age:.0f} s ago, past its maximum age of {status.max_age_s} s "
                f"({status.last_error or 'no successful read since'})", reason="trust-stale")

    def _aged(self, source: _Source, now: datetime) -> SourceStatus:
        last, max_age = source.status.last_success, self._max_age(source.spec)
        stale = last is not None and (now - last).total_seconds() > max_age
        if stale == source.status.stale and max_age == source.status.max_age_s:
            return source.status
        return replace(source.status, stale=stale, max_age_s=max_age)

    def _max_age(self, spec: KeySource) -> int:
        return spec.max_age_s or default_max_age_s(self._interval(spec))

    def refresh(self, now: datetime, *, force: bool = False) -> list[str]:
        """Re-read every source whose interval has passed (all of them with ``force``);
        return the errors, all of them.

        Call it on a schedule (e.g. every second); it reads only what is due. The
        first call schedules the sources that are fine and retries those that failed.
        """
        errors: list[str] = []
        with self._lock:
            for source in self._sources:
                if force or (source.due is None and not source.status.ok) or (
                        source.due is not None and now >= source.due):
                    error = self._reload(source, now)
                    if error is not None:
                        errors.append(error)
                elif source.due is None:
                    source.status = replace(source.status, next_due=self._next(source, now))
        return errors

    def reload(self, keys: Sequence[SourceKey], now: datetime) -> list[str]:
        """Re-read the sources ``keys`` now, whatever their schedule (a source that says
        it changed, e.g. a Workload API stream); return the errors."""
        errors: list[str] = []
        with self._lock:
            for key in keys:
                source = self._by_key.get(key)
                if source is not None:
                    error = self._reload(source, now)
                    if error is not None:
                        errors.append(error)
        return errors

    def _reload(self, source: _Source, now: datetime, *, initial: bool = False) -> str | None:
        spec = source.spec
        try:
            data = spec.reader.read()
            if spec.kind == "bundle":
                self._replace_bundle(parse_spiffe_bundle(data, spec.name))
            else:
                self._replace_issuer_keys(spec.name, parse_jwks(data).keys)
        except BundleError as e:
            source.consecutive_failures += 1
            retry = min(self._interval(spec), RETRY_AFTER_FAILURE_S,
                        2 ** min(source.consecutive_failures - 1, 6))
            message = f"{spec.kind} {spec.name}: {e} (keeping the last good copy)"
            was_stale = source.status.stale
            source.status = self._aged(source, now)
            source.status = replace(
                source.status, ok=False, last_attempt=now, last_error=str(e),
                failures=source.status.failures + 1,
                next_due=None if initial else now + timedelta(seconds=retry))
            if source.status.stale and not was_stale:
                log.error("trust source %s is stale: no good read for more than %d s; "
                          "its credentials are refused (identity.trust_stale)",
                          source.status.source, source.status.max_age_s)
            self._notify(source)
            return message
        source.consecutive_failures = 0
        source.status = replace(
            source.status, ok=True, last_attempt=now, last_success=now, last_error=None,
            next_due=None if initial else self._next(source, now),
            stale=False, max_age_s=self._max_age(spec))
        self._notify(source)
        return None

    def _notify(self, source: _Source) -> None:
        if self._observer is not None:
            self._observer(source.status)

    def _replace_bundle(self, new: TrustBundle) -> None:
        current = self._bundles.get(new.trust_domain)
        check_successor(current, new)
        new = self._with_extra(new)
        if new != current:
            self._bundles = MappingProxyType({**self._bundles, new.trust_domain: new})
            self.version += 1

    def _replace_issuer_keys(self, name: str, keys: Mapping[str, JwtKey]) -> None:
        updated = tuple(replace(i, keys=keys) if i.name == name else i for i in self._issuers)
        if updated != self._issuers:
            self._issuers = updated
            self.version += 1

    def _next(self, source: _Source, now: datetime) -> datetime:
        return now + timedelta(seconds=self._interval(source.spec))

    def _interval(self, spec: KeySource) -> int:
        if spec.interval_s is not None:
            return spec.interval_s
        bundle = self._bundles.get(spec.name) if spec.kind == "bundle" else None
        return bundle.refresh_interval_s if bundle is not None else DEFAULT_REFRESH_S

    def _with_extra(self, bundle: TrustBundle) -> TrustBundle:
        extra = self._extra.get(bundle.trust_domain)
        return bundle.with_jwt_keys(extra) if extra else bundle

    def _extra_only(self) -> dict[str, TrustBundle]:
        return {td: TrustBundle(trust_domain=td) for td in self._extra}


def _initial_status(spec: KeySource, *, ok: bool) -> SourceStatus:
    return SourceStatus(source=f"{spec.kind}:{spec.name}", kind=spec.kind, name=spec.name,
                        location=spec.reader.location, ok=ok)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


__all__ = ["DEFAULT_MAX_AGE_S", "KeySource", "SourceKey", "SourceStatus", "TrustStore",
           "default_max_age_s"]
