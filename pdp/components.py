"""Wire the PDP's parts once, from settings: every door gets them from here.

Like Cerbos's ``Components`` struct: the app factory, the CLI and tests build
one ``Components`` and hand it on; nothing below reaches for a global.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from context.clock import Clock, SystemClock
from context.durable import DurableContextStore, DurableRevocationStore, DurableState
from context.factory import BehaviourWatch, open_live_context, shared_revocations, watch_behaviour
from context.grants import GrantStore
from context.live import LiveContext
from context.provider import LiveContextProvider
from context.revocations import RevocationStore
from pdp.audit.auditing.archive import BundleArchive, archive_dir
from pdp.audit.auditing.redact import Redactor
from pdp.audit.factory import open_admin_state, open_configured_log
from pdp.audit.memory.admin_state import MemoryAdminState
from pdp.audit.store import DecisionStore
from pdp.audit.upkeep.maintenance import AuditMaintenance, start_maintenance
from pdp.broker import Broker, BrokerKeyring, build_broker
from pdp.broker.trust import broker_issuer, broker_key_source
from pdp.config import Settings
from pdp.decision.service import DecisionService
from pdp.engine.sources import BundleSource, DirectorySource, GitSource
from pdp.engine.store import BundleStore, ReloadOutcome
from pdp.engine.validation_cache import DIRECTORY as VALIDATION_CACHE_DIRECTORY
from pdp.engine.validation_cache import ValidationCache
from pdp.identity.dev_issuer import DevIssuer
from pdp.identity.revocation import StoreRevocationCheck
from pdp.identity.verifier import IdentityVerifier
from pdp.metrics import Metrics


@dataclass
class Components:
    settings: Settings
    bundles: BundleStore
    verifier: IdentityVerifier
    dev_issuer: DevIssuer | None
    live: LiveContextProvider
    log: DecisionStore  # DecisionLog + QueryableLog (pdp.audit.store)
    clock: Clock
    metrics: Metrics
    service: DecisionService
    # Every bundle version that decided, by SHA-256 (pdp.audit.auditing.archive).
    archive: BundleArchive | None = None

    @property
    def grants(self) -> GrantStore:
        assert self.service.grants is not None
        return self.service.grants
    # Live revocations (context.revocations), consulted on every verification.
    revocations: RevocationStore | None = None
    # The behaviour monitor feeding adaptive risk (context.factory.BehaviourWatch).
    behaviour: BehaviourWatch | None = None
    # Signed checkpoints and retention of the decision log (pdp.audit.upkeep.maintenance).
    audit_maintenance: AuditMaintenance | None = None
    # The durable copy of revocations, incidents, risk and grants (context.durable).
    admin_state: DurableState | None = None
    # The credential broker (pdp.broker): None when it has no key (no key_file outside --dev).
    broker: Broker | None = None

    def close(self) -> None:
        self.bundles.stop_watching()
        self.verifier.stop_refreshing()
        if self.behaviour is not None:
            self.behaviour.close()
        self.log.close()
        if self.audit_maintenance is not None:  # after the log: signs its final head
            self.audit_maintenance.close()
        close_live = getattr(self.live, "close", None)  # Redis: its sync thread
        if close_live is not None:
            close_live()
        if self.admin_state is not None:
            self.admin_state.close()


def build_components(settings: Settings, *, clock: Clock | None = None,
                     log: DecisionStore | None = None,
                     revocations: RevocationStore | None = None) -> Components:
    """Build every part from ``settings``.

    Raises ``pdp.engine.BundleInvalid`` if the bundle is refused: a PDP with no
    valid policies does not start.
    """
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or SystemClock()
    metrics = Metrics()
    dev_issuer = DevIssuer.load_or_create(settings.state_dir) if settings.dev else None
    # What administrators set lives in the decision log's store, beside the log
    # (context.durable); a given log (pdp check, tests) keeps it in memory.
    # (The stores are pdp.audit's; DurableState needs only context.admin_store.AdminStateStore.)
    admin_state = DurableState(open_admin_state(settings) if log is None else MemoryAdminState(),
                               max_age_s=settings.context.max_age.revocations_s,
                               resync_s=settings.context.resync_s)
    # Live context: in process, or shared through Redis (context.factory).
    live = open_live_context(settings)
    redis_link = getattr(getattr(live, "store", None), "link", None)  # RedisContextStore
    shared = shared_revocations(live) if revocations is None else None
    if isinstance(live, LiveContext):
        live.store = DurableContextStore(live.store, admin_state)
    if revocations is None:  # Redis: also what replicas with a store of their own revoked
        revocations = DurableRevocationStore(admin_state, shared=shared)
    # The PDP trusts its own credential broker as an issuer, out of the box (pdp.broker.trust).
    keyring = BrokerKeyring.load(settings.broker, state_dir=settings.state_dir, dev=settings.dev)
    verifier = IdentityVerifier.from_settings(
        settings, dev_issuer=dev_issuer, deny_list=StoreRevocationCheck(revocations),
        observer=metrics.observe_identity_source,
        extra_issuers=([(broker_issuer(settings), broker_key_source(keyring, clock.now))]
                       if keyring is not None else ()))

    bundles = BundleStore(bundle_source(settings), validation_cache=validation_cache(settings),
                          answer_memo_bytes=settings.answer_memo_bytes)
    bundles.subscribe(metrics.observe_reload)
    bundles.load_initial()
    # Archive each bundle version as it is loaded, so old decisions keep their policies' text.
    archive = BundleArchive(archive_dir(settings.state_dir))
    archive.store_quietly(bundles.current)
    bundles.subscribe(
        lambda outcome: archive.store_quietly(bundles.current) if outcome.ok else None)

    audit_maintenance = None
    if log is None:
        log = open_configured_log(settings)  # [audit]: backend, spool
        audit_maintenance = start_maintenance(settings, log)  # checkpoints, retention
    # The service needs only pdp.decision.log.DecisionLog (append), which every audit
    # store meets structurally; so `decision` never imports `audit` (tests/test_layering.py).
    service = DecisionService(
        bundles=bundles, verifier=verifier, live=live, log=log,
        clock=clock, max_ttl=timedelta(seconds=settings.max_decision_ttl_s),
        observer=metrics.observe_decision,
        redactor=Redactor.from_pointers(settings.audit.redact) or None,
        grants=GrantStore(settings.state_dir / "grants.json", durable=admin_state))
    bundles.subscribe(lambda outcome: _record_reload(service, outcome))
    # Adaptive risk from the service's own decisions (context.behaviour).
    behaviour = watch_behaviour(service, live, settings)
    # Keep the copy current (context.durable): poll the store, Redis or not (a Redis
    # outage must not leave the revocations unconfirmed); Redis adds fan-out and cache.
    if redis_link is not None:
        admin_state.attach_redis(redis_link)
    admin_state.start_polling()
    broker = (build_broker(settings, keyring, service=service, durable=admin_state,
                           revocations=revocations, clock=clock)
              if keyring is not None else None)
    loaded = bundles.current
    service.record_admin_event_sync(
        "bundle.load", principal=None, authorized_by=None,
        detail={"version": loaded.version.as_dict() if loaded else None,
                "directory": str(settings.policies)})
    return Components(settings=settings, bundles=bundles, verifier=verifier,
                      dev_issuer=dev_issuer, live=live, log=log, clock=clock,
                      metrics=metrics, service=service, archive=archive,
                      revocations=revocations, behaviour=behaviour,
                      audit_maintenance=audit_maintenance, admin_state=admin_state,
                      broker=broker)



def _record_reload(service: DecisionService, outcome: ReloadOutcome) -> None:
    """Every reload attempt, good or refused, goes into the decision log's chain (once:
    with ``--workers N`` the worker that asked, or the first, records the supervisor's)."""
    if not outcome.record:
        return
    service.record_admin_event_sync(
        "bundle.reload" if outcome.ok else "bundle.reload_refused",
        principal=outcome.requested_by, authorized_by=outcome.authorized_by,
        detail={"version": outcome.version, "changed": outcome.changed,
                "problems": list(outcome.problems)})


def watch_interval_s(settings: Settings) -> float:
    """How often the bundle source is looked at when watched: a git ref's poll interval,
    or the polling interval of a directory that cannot be watched for events."""
    git = settings.policies_git
    return git.poll_s if git else 1.0


def validation_cache(settings: Settings) -> ValidationCache | None:
    """Where a server keeps Cedar's validation verdicts (``<state_dir>/validated``), unless
    ``validation_cache = false`` (:mod:`pdp.engine.validation_cache`)."""
    if not settings.validation_cache:
        return None
    return ValidationCache(settings.state_dir / VALIDATION_CACHE_DIRECTORY)


def bundle_source(settings: Settings) -> BundleSource:
    """The configured policy source: a git repository and ref, or the `policies` directory."""
    git = settings.policies_git
    if git is None:
        return DirectorySource(settings.policies)
    return GitSource(git.url, ref=git.ref, subdir=git.subdir,
                     cache_dir=settings.state_dir / "git")
