"""The one way in: :class:`IdentityVerifier` turns any presented credential into a
:class:`~pdp.identity.model.VerifiedIdentity` or an ``IdentityError``.

Routing of a bearer token, decided on its unverified header and payload:

1. ``typ`` is ``at+jwt``, or ``iss`` names a configured issuer → that issuer's
   OAuth verification (an ``at+jwt`` with no such issuer is refused);
2. else ``sub`` claims to be a SPIFFE ID → JWT-SVID verification against the
   bundle of its trust domain;
3. else → :class:`~pdp.identity.errors.UntrustedIssuer`.

So each token kind has its own trust anchors: an issuer's JWKS never verifies
a JWT-SVID, and a SPIFFE bundle never verifies an access token. A PEM chain
goes to X.509-SVID verification.

A delegated token (RFC 8693 ``act``) is accepted only if its current actor is
a known workload identity form: a SPIFFE ID of a trust domain this PDP trusts,
or the subject of a configured issuer named by ``act.iss``. Whether the actor
may do what is asked is the policies' business (``decide()``).

Trust anchors are refreshed by :meth:`IdentityVerifier.refresh`, called on a
schedule by :meth:`IdentityVerifier.start_refreshing` (a daemon thread), never
because a token arrived.

Example::

    verifier = IdentityVerifier.from_settings(settings, dev_issuer=dev)
    identity = verifier.verify(BearerToken(token), now=datetime.now(UTC))
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cachetools import TLRUCache

from pdp.config import IssuerConfig, Settings, TrustDomainConfig
from pdp.identity.algorithms import allowed_algorithms
from pdp.identity.claims import LIFETIME_EXCEEDED_FLAG, JwtRules, check_times
from pdp.identity.dev_issuer import DevIssuer
from pdp.identity.errors import (
    BadSpiffeId,
    IdentityError,
    LifetimeExceeded,
    MalformedCredential,
    MissingCredential,
    UntrustedIssuer,
)
from pdp.identity.fetch import DiscoverySource, FileSource, KeyDocumentSource, UrlSource
from pdp.identity.jose import CompactJws, is_access_token_typ, parse_compact_jws
from pdp.identity.jwk import JwtKey
from pdp.identity.jwt_svid import verify_jwt_svid
from pdp.identity.model import BearerToken, Credential, VerifiedIdentity, X509Chain
from pdp.identity.oauth_jwt import OAuthIssuer, verify_oauth_jwt
from pdp.identity.revocation import DenyList, RevocationCheck
from pdp.identity.spiffe_id import looks_like_spiffe_id, parse_spiffe_id
from pdp.identity.trust_store import (
    KeySource,
    SourceKey,
    SourceStatus,
    StatusObserver,
    TrustStore,
)
from pdp.identity.workload_api import WorkloadApiBundleReader, WorkloadApiBundles
from pdp.identity.x509_svid import check_validity_period, verify_x509_chain

DEFAULT_CACHE_SIZE = 10000
REFRESH_TICK_S = 1.0
"""How often the refresh thread looks for due sources (it reads only those)."""

log = logging.getLogger("pdp.identity")

# Re-checks a cached identity's time claims at a new ``now`` (raises Expired/NotYetValid).
Recheck = Callable[[datetime], object]


@dataclass(frozen=True, slots=True)
class _Verified:
    identity: VerifiedIdentity
    recheck: Recheck
    source: SourceKey  # the trust source whose anchors verified it
    # The first instant at which the credential no longer verifies (JWT ``exp`` plus the
    # leeway; just past the earliest ``notAfter`` of an X.509 chain).
    valid_until: datetime


class VerificationCache:
    """A bounded LRU of verified credentials keyed by SHA-256 of the credential, on
    `cachetools.TLRUCache <https://cachetools.readthedocs.io/en/stable/#cachetools.TLRUCache>`_.

    An entry lives until its credential's own expiry (``valid_until``), measured on the
    caller's clock (``now``), so an expired credential is never served and expired
    entries are the first to go when the cache is full. A hit skips the signature and
    path checks, never the clock: the caller still re-checks validity at ``now``
    (``nbf``, a clock that went back).
    """

    def __init__(self, max_size: int = DEFAULT_CACHE_SIZE) -> None:
        if max_size < 0:
            raise ValueError("cache size must be >= 0")
        self.max_size = max_size
        self._now = datetime.min.replace(tzinfo=UTC)  # the caller's clock, set under the lock
        self._entries = self._empty()
        # cachetools caches are not thread-safe: every access holds this lock.
        self._lock = threading.Lock()

    def _empty(self) -> TLRUCache[str, _Verified]:
        return TLRUCache(maxsize=max(self.max_size, 1),
                         ttu=lambda _key, entry, _now: entry.valid_until, timer=lambda: self._now)

    def get(self, key: str, now: datetime) -> _Verified | None:
        with self._lock:
            self._now = now
            return self._entries.get(key)

    def put(self, key: str, entry: _Verified, now: datetime) -> None:
        if self.max_size == 0:
            return
        with self._lock:
            self._now = now
            self._entries[key] = entry  # an entry already expired at ``now`` is not kept

    def clear(self) -> None:
        with self._lock:
            self._entries = self._empty()  # at once, not entry by entry

    def __len__(self) -> int:
        return len(self._entries)


class IdentityVerifier:
    """Verifies JWT-SVIDs, OAuth JWTs and X.509-SVIDs against the configured trust.

    - ``store``: the trust anchors (bundles by trust domain, issuers with keys).
    - ``svid_rules``: JWT-SVID rules by trust domain; a domain without rules is untrusted.
    - ``deny_list``: live revocations, checked on every verification, cached or not.
    - ``cache_size``: most verified credentials remembered (0 disables the cache).
    """

    def __init__(
        self,
        *,
        store: TrustStore,
        svid_rules: Mapping[str, JwtRules],
        deny_list: RevocationCheck | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        x509_lifetimes: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.store = store
        self.svid_rules = dict(svid_rules)
        # Per trust domain: (longest X.509-SVID leaf lifetime in seconds, "deny" | "flag").
        self.x509_lifetimes = dict(x509_lifetimes or {})
        self.deny_list: RevocationCheck = deny_list if deny_list is not None else DenyList()
        self.cache = VerificationCache(cache_size)
        self._cache_version = store.version
        self._refresher: threading.Thread | None = None
        self._stop_refreshing = threading.Event()
        # The Workload API watcher when a trust domain's bundle comes from it.
        self.workload_api: WorkloadApiBundles | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        dev_issuer: DevIssuer | None = None,
        deny_list: RevocationCheck | None = None,
        cache_size: int | None = None,
        observer: StatusObserver | None = None,
        extra_issuers: Sequence[tuple[OAuthIssuer, KeySource]] = (),
    ) -> IdentityVerifier:
        """Build from settings and read every trust source now.

        A bundle or JWKS *file* that cannot be read or parsed raises
        :class:`~pdp.identity.trust_bundle.BundleError` (a configuration error);
        an *endpoint* that fails starts its domain or issuer with no keys (its
        credentials are refused, ``/readyz`` says why) and is retried by the
        refresh. With ``dev_issuer``, its trust domain (``example.org``) is
        trusted with the dev key added to any configured bundle of that domain.
        ``cache_size`` defaults to ``settings.verification_cache_size``.
        ``extra_issuers``: issuers configured in code with their key source (the PDP's
        own credential broker, ``pdp.broker.trust``).
        """
        _check_unique([td.name for td in settings.trust_domains], "trust domain")
        _check_unique([i.name for i in settings.issuers], "issuer name")
        _check_unique([i.issuer.rstrip("/") for i in settings.issuers], "issuer")
        svid_rules = {td.name: _domain_rules(td, settings) for td in settings.trust_domains}
        extra_keys: dict[str, dict[str, JwtKey]] = {}
        if dev_issuer is not None:
            extra_keys[dev_issuer.trust_domain] = {dev_issuer.kid: dev_issuer.jwt_key}
            svid_rules.setdefault(dev_issuer.trust_domain, _default_rules(settings))
        issuers = [_oauth_issuer(cfg, settings) for cfg in settings.issuers]
        workload_api = None
        if any(td.workload_api for td in settings.trust_domains):
            # Connect first, so that the initial read below finds the agent's bundles.
            workload_api = WorkloadApiBundles(settings.workload_api_socket)
            workload_api.start()
        sources = ([_bundle_source(td, settings, workload_api) for td in settings.trust_domains]
                   + [_jwks_source(cfg, issuer, settings)
                      for cfg, issuer in zip(settings.issuers, issuers)]
                   + [source for _, source in extra_issuers])
        issuers += [issuer for issuer, _ in extra_issuers]
        store = TrustStore.load(sources, issuers=issuers, extra_jwt_keys=extra_keys,
                                observer=observer)
        size = settings.verification_cache_size if cache_size is None else cache_size
        x509_lifetimes = {td.name: (td.x509_max_lifetime_s, td.lifetime_policy)
                          for td in settings.trust_domains if td.x509_max_lifetime_s}
        verifier = cls(store=store, svid_rules=svid_rules, deny_list=deny_list,
                       cache_size=size, x509_lifetimes=x509_lifetimes)
        if workload_api is not None:
            verifier.follow(workload_api, [td.name for td in settings.trust_domains
                                           if td.workload_api])
        return verifier

    def follow(self, workload_api: WorkloadApiBundles, trust_domains: list[str]) -> None:
        """Re-read ``trust_domains``' bundles whenever the Workload API streams a change or
        fails, rather than on the refresh schedule alone (a retired CA stops at once)."""
        keys: list[SourceKey] = [("bundle", td) for td in trust_domains]

        def changed() -> None:
            for error in self.store.reload(keys, datetime.now(UTC)):
                log.warning("trust refresh: %s", error)
            self._drop_cache_if_trust_changed()

        self.workload_api = workload_api
        workload_api.on_change = changed
        changed()  # an update may have come between the initial read and now

    def verify(self, credential: Credential, now: datetime) -> VerifiedIdentity:
        """Verify ``credential`` at ``now`` (timezone-aware); raise an ``IdentityError``."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        key = _cache_key(credential)
        version = self._drop_cache_if_trust_changed()
        cached = self.cache.get(key, now)
        hit = cached is not None
        if cached is None:
            cached = self._verify_uncached(credential, now)  # checks its source's age
            if self.store.version == version:  # not verified with anchors replaced meanwhile
                self.cache.put(key, cached, now)
        else:
            self.store.check_fresh(cached.source, now)  # anchors past their age prove nothing
        try:
            if hit:
                cached.recheck(now)
            self.deny_list.check(cached.identity, now)
        except IdentityError as e:  # the credential verified: it is this principal's
            raise e.proven(cached.identity.principal_id) from e
        return cached.identity

    def refresh(self, now: datetime, *, force: bool = False) -> list[str]:
        """Re-read the trust sources that are due (all with ``force``); return every error."""
        errors = self.store.refresh(now, force=force)
        self._drop_cache_if_trust_changed()
        return errors

    def source_statuses(self, now: datetime | None = None) -> list[SourceStatus]:
        """Each trust source's state (ok, stale as of ``now``, last success, last error),
        for ``/readyz``."""
        return self.store.statuses(now)

    def start_refreshing(self, clock: Callable[[], datetime] | None = None,
                         tick_s: float = REFRESH_TICK_S) -> None:
        """Refresh the trust sources on their schedule in a daemon thread (idempotent).

        Nothing to do without sources (e.g. ``--dev`` alone). ``clock`` gives the
        time (default: the system clock).
        """
        if self._refresher is not None or not self.store.has_sources:
            return
        now = clock or (lambda: datetime.now(UTC))
        self._stop_refreshing.clear()

        def loop() -> None:
            while not self._stop_refreshing.wait(tick_s):
                try:
                    for error in self.refresh(now()):
                        log.warning("trust refresh: %s", error)
                except Exception:  # noqa: BLE001 - the thread must outlive any bug
                    log.exception("trust refresh failed")

        self._refresher = threading.Thread(target=loop, name="pdp-trust-refresh", daemon=True)
        self._refresher.start()

    def stop_refreshing(self) -> None:
        """Stop the refresh thread started by :meth:`start_refreshing`, and stop following
        the Workload API (its streams are closed: this is the verifier's shutdown)."""
        if self.workload_api is not None:
            self.workload_api.on_change = None
            self.workload_api.close()
        thread, self._refresher = self._refresher, None
        if thread is not None:
            self._stop_refreshing.set()
            thread.join(timeout=10)

    def _verify_uncached(self, credential: Credential, now: datetime) -> _Verified:
        if isinstance(credential, X509Chain):
            try:
                result = verify_x509_chain(credential.pem, self.store.bundles, now)
            except IdentityError as e:  # an expired SVID proves nothing with stale anchors
                if e.proven_principal is not None:
                    self.store.check_fresh(_bundle_of(e.proven_principal), now)
                raise
            identity = self._check_x509_lifetime(result.identity)
            source = _bundle_of(identity.principal_id)
            self.store.check_fresh(source, now)
            # Valid through ``notAfter`` inclusive (RFC 5280 §4.1.2.5), so gone one tick later.
            until = min(c.not_valid_after_utc for c in result.chain) + timedelta(microseconds=1)
            return _Verified(identity, lambda at: check_validity_period(result.chain, at),
                             source, until)
        return self._verify_token(parse_compact_jws(credential.token), now)

    def _verify_token(self, jws: CompactJws, now: datetime) -> _Verified:
        issuer = self._issuer_for(jws)
        sub = jws.payload.get("sub")
        if issuer is not None:
            source: SourceKey = ("jwks", issuer.name)
            self.store.check_fresh(source, now)  # before the keys are trusted with anything
            identity = verify_oauth_jwt(jws, issuer=issuer, now=now)
            leeway = issuer.rules.leeway_s
        elif looks_like_spiffe_id(sub):
            source = _bundle_of(sub)
            self.store.check_fresh(source, now)
            identity = verify_jwt_svid(
                jws, bundles=self.store.bundles, rules=self.svid_rules, now=now)
            leeway = self.svid_rules[identity.trust_domain].leeway_s
        else:
            raise UntrustedIssuer("token is neither from a configured issuer nor a JWT-SVID")
        if identity.actor is not None:
            self._check_actor(identity)
        payload = jws.payload
        assert identity.expires_at is not None  # check_times requires ``exp``
        return _Verified(identity, lambda at: check_times(payload, at, leeway), source,
                         identity.expires_at + timedelta(seconds=leeway))

    def _check_x509_lifetime(self, identity: VerifiedIdentity) -> VerifiedIdentity:
        limit = self.x509_lifetimes.get(identity.trust_domain)
        if limit is None or identity.issued_at is None or identity.expires_at is None:
            return identity
        max_s, policy = limit
        if (identity.expires_at - identity.issued_at).total_seconds() <= max_s:
            return identity
        if policy == "flag":
            return replace(identity, flags=(*identity.flags, LIFETIME_EXCEEDED_FLAG))
        raise LifetimeExceeded(f"certificate lifetime exceeds {max_s} s",
                               reason="certificate-lifetime")

    def _check_actor(self, identity: VerifiedIdentity) -> None:
        """The current actor must be a workload we could verify ourselves: a SPIFFE ID of
        a trusted trust domain, or a subject of a configured issuer named by ``act.iss``."""
        actor = identity.actor or ""
        if looks_like_spiffe_id(actor):
            spiffe_id = parse_spiffe_id(actor)  # read_actors already parsed it strictly
            if spiffe_id.is_root:
                raise BadSpiffeId("the acting workload's SPIFFE ID has no path",
                                  reason="actor-no-path")
            if spiffe_id.trust_domain in self.svid_rules:
                return
            raise UntrustedIssuer(
                f"the acting workload {actor} is of trust domain "
                f"{spiffe_id.trust_domain!r}, which is not trusted", reason="untrusted-actor")
        if identity.actor_issuer is not None and any(
                i.matches(identity.actor_issuer) for i in self.store.issuers):
            return
        raise UntrustedIssuer(
            f"the acting workload {actor!r} is neither a SPIFFE ID of a trusted trust domain "
            "nor a subject of a configured issuer (act.iss)", reason="untrusted-actor")

    def _issuer_for(self, jws: CompactJws) -> OAuthIssuer | None:
        iss = jws.payload.get("iss")
        issuers = self.store.issuers
        issuer = (next((i for i in issuers if i.issuer == iss), None)
                  or next((i for i in issuers if i.matches(iss)), None))
        if issuer is None and is_access_token_typ(jws.header.get("typ")):
            raise UntrustedIssuer(f"no configured issuer {iss!r} for this access token")
        return issuer

    def _drop_cache_if_trust_changed(self) -> int:
        version = self.store.version
        if version != self._cache_version:
            self.cache.clear()
            self._cache_version = version
        return version


def _bundle_of(spiffe_id: str) -> SourceKey:
    """The trust source of a SPIFFE ID's trust domain (``spiffe://<td>/...``)."""
    return ("bundle", spiffe_id.removeprefix("spiffe://").split("/", 1)[0])


def _cache_key(credential: Credential) -> str:
    if isinstance(credential, BearerToken):
        kind, raw = b"jwt", credential.token
    elif isinstance(credential, X509Chain):
        kind, raw = b"x509", credential.pem
    else:
        raise MalformedCredential(f"unsupported credential type {type(credential).__name__}")
    if not isinstance(raw, str):
        raise MalformedCredential("credential is not text")
    if not raw.strip():
        raise MissingCredential("no credential presented")
    return hashlib.sha256(kind + b"\0" + raw.encode("utf-8", "surrogatepass")).hexdigest()


def _default_rules(settings: Settings) -> JwtRules:
    return JwtRules(
        audiences=frozenset({settings.audience}),
        allow_multiple_audiences=settings.allow_multiple_audiences,
        leeway_s=settings.leeway_s,
        max_act_depth=settings.delegation_max_depth,
    )


def _domain_rules(td: TrustDomainConfig, settings: Settings) -> JwtRules:
    return JwtRules(
        audiences=frozenset({settings.audience}),
        algorithms=allowed_algorithms(td.algorithms),
        allow_multiple_audiences=settings.allow_multiple_audiences,
        leeway_s=settings.leeway_s,
        max_lifetime_s=td.max_lifetime_s,
        lifetime_policy=td.lifetime_policy,
        max_act_depth=settings.delegation_max_depth,
    )


def _bundle_source(td: TrustDomainConfig, settings: Settings,
                   workload_api: WorkloadApiBundles | None) -> KeySource:
    if td.workload_api:
        assert workload_api is not None  # made by from_settings when a domain asks for it
        # Updates arrive as streamed (IdentityVerifier.follow); the schedule only confirms.
        return KeySource("bundle", td.name, WorkloadApiBundleReader(workload_api, td.name),
                         interval_s=td.refresh_s or settings.identity_refresh_s,
                         max_age_s=td.max_age_s, unavailable_until_read=True)
    if td.bundle_file is not None:
        return KeySource("bundle", td.name, FileSource(td.bundle_file),
                         interval_s=settings.identity_refresh_s, required=True,
                         max_age_s=td.max_age_s)
    assert td.bundle_url is not None  # the config validator requires one of the two
    return KeySource("bundle", td.name, UrlSource(td.bundle_url, ca_file=td.ca_file),
                     interval_s=td.refresh_s, max_age_s=td.max_age_s)


def _jwks_source(cfg: IssuerConfig, issuer: OAuthIssuer, settings: Settings) -> KeySource:
    reader: KeyDocumentSource
    if cfg.jwks_file is not None:
        return KeySource("jwks", cfg.name, FileSource(cfg.jwks_file),
                         interval_s=settings.identity_refresh_s, required=True,
                         max_age_s=cfg.max_age_s)
    if cfg.jwks_uri is not None:
        reader = UrlSource(cfg.jwks_uri, ca_file=cfg.ca_file)
    else:
        assert cfg.discovery_url is not None  # the config validator requires one source
        reader = DiscoverySource(cfg.discovery_url, issuer_matches=issuer.matches,
                                 ca_file=cfg.ca_file)
    return KeySource("jwks", cfg.name, reader, interval_s=cfg.refresh_s, max_age_s=cfg.max_age_s)


def _oauth_issuer(cfg: IssuerConfig, settings: Settings) -> OAuthIssuer:
    return OAuthIssuer(
        name=cfg.name,
        issuer=cfg.issuer,
        keys={},  # filled in by its key source (pdp.identity.trust_store)
        rules=JwtRules(
            audiences=frozenset(cfg.audiences or [settings.audience]),
            algorithms=allowed_algorithms(cfg.algorithms),
            allow_multiple_audiences=settings.allow_multiple_audiences,
            leeway_s=settings.leeway_s,
            max_lifetime_s=cfg.max_lifetime_s,
            lifetime_policy=cfg.lifetime_policy,
            max_act_depth=settings.delegation_max_depth,
        ),
        token_type=cfg.token_type,
        required_claims=frozenset(cfg.required_claims),
        principal_claim=cfg.principal_claim,
        scopes_claim=cfg.scopes_claim,
        groups_claim=cfg.groups_claim,
        allow_trailing_slash=cfg.allow_trailing_slash,
    )


def _check_unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is configured twice")
        seen.add(value)


__all__ = ["DEFAULT_CACHE_SIZE", "IdentityVerifier", "VerificationCache"]
