"""The trust anchors in force, refreshed from files on a schedule.

One SPIFFE bundle per trust domain and one JWKS per OAuth issuer. Each source
is re-read when its interval has passed (the bundle's ``spiffe_refresh_hint``,
else five minutes): a failed read or an invalid document keeps the last good
copy, and a bundle whose ``spiffe_sequence`` went down is refused. A token with
an unknown ``kid`` never triggers a fetch, or anyone could make us hammer the
key server (or fill the log) by minting random kids.
Ref: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md#5-spiffe-bundle-endpoint
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pdp.identity.jwk import JwtKey
from pdp.identity.jwks import load_jwks_file
from pdp.identity.oauth_jwt import OAuthIssuer
from pdp.identity.trust_bundle import (
    DEFAULT_REFRESH_S, BundleError, TrustBundle, check_successor, load_bundle_file,
)

RETRY_AFTER_FAILURE_S = 60


@dataclass(slots=True)
class _Source:
    kind: Literal["bundle", "jwks"]
    name: str  # trust domain, or issuer name
    path: Path
    next_due: datetime | None = None


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
    ) -> None:
        self._lock = threading.Lock()
        self._extra = {td: dict(keys) for td, keys in (extra_jwt_keys or {}).items()}
        self._bundles = MappingProxyType(
            {td: self._with_extra(b) for td, b in {**self._extra_only(), **bundles}.items()})
        self._issuers: tuple[OAuthIssuer, ...] = tuple(issuers)
        self._sources = (
            [_Source("bundle", td, path) for td, path in (bundle_files or {}).items()]
            + [_Source("jwks", name, path) for name, path in (jwks_files or {}).items()])
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

    @property
    def bundles(self) -> Mapping[str, TrustBundle]:
        """The current bundle of each trusted domain (a read-only snapshot)."""
        return self._bundles

    @property
    def issuers(self) -> tuple[OAuthIssuer, ...]:
        """The trusted OAuth issuers with their current keys."""
        return self._issuers

    def refresh(self, now: datetime) -> list[str]:
        """Re-read every source whose interval has passed; return the errors, all of them.

        Call it on a schedule (e.g. every few seconds); it reads only what is due.
        """
        errors: list[str] = []
        with self._lock:
            for source in self._sources:
                if source.next_due is None:
                    source.next_due = now + timedelta(seconds=self._interval(source))
                elif now >= source.next_due:
                    errors += self._reload(source, now)
        return errors

    def _reload(self, source: _Source, now: datetime) -> list[str]:
        try:
            if source.kind == "bundle":
                self._replace_bundle(load_bundle_file(source.path, source.name))
            else:
                self._replace_issuer_keys(source.name, load_jwks_file(source.path).keys)
        except BundleError as e:
            retry = min(self._interval(source), RETRY_AFTER_FAILURE_S)
            source.next_due = now + timedelta(seconds=retry)
            return [f"{source.kind} {source.name}: {e} (keeping the last good copy)"]
        source.next_due = now + timedelta(seconds=self._interval(source))
        return []

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

    def _interval(self, source: _Source) -> int:
        bundle = self._bundles.get(source.name) if source.kind == "bundle" else None
        return bundle.refresh_interval_s if bundle is not None else DEFAULT_REFRESH_S

    def _with_extra(self, bundle: TrustBundle) -> TrustBundle:
        extra = self._extra.get(bundle.trust_domain)
        return bundle.with_jwt_keys(extra) if extra else bundle

    def _extra_only(self) -> dict[str, TrustBundle]:
        return {td: TrustBundle(trust_domain=td) for td in self._extra}


__all__ = ["TrustStore"]
