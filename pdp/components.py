"""Wire the PDP's parts once, from settings: every door gets them from here.

Like Cerbos's ``Components`` struct: the app factory, the CLI and tests build
one ``Components`` and hand it on; nothing below reaches for a global.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from context.calendar import BusinessCalendar
from context.clock import Clock, SystemClock
from context.memory import InMemoryContext
from context.provider import LiveContextProvider
from pdp.audit.factory import open_decision_log
from pdp.config import Settings
from pdp.decision.service import DecisionService
from pdp.engine.store import BundleStore, ReloadOutcome
from pdp.identity.dev_issuer import DevIssuer
from pdp.identity.verifier import IdentityVerifier
from pdp.metrics import Metrics


@dataclass
class Components:
    settings: Settings
    bundles: BundleStore
    verifier: IdentityVerifier
    dev_issuer: DevIssuer | None
    live: LiveContextProvider
    log: object  # DecisionLog + QueryableLog (pdp.audit.store)
    clock: Clock
    metrics: Metrics
    service: DecisionService

    def close(self) -> None:
        self.bundles.stop_watching()
        self.log.close()  # type: ignore[attr-defined]


def build_components(settings: Settings, *, clock: Clock | None = None,
                     log: object | None = None) -> Components:
    """Build every part from ``settings``.

    Raises ``pdp.engine.BundleInvalid`` if the bundle is refused: a PDP with no
    valid policies does not start.
    """
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    clock = clock or SystemClock()
    metrics = Metrics()
    dev_issuer = DevIssuer.load_or_create(settings.state_dir) if settings.dev else None
    verifier = IdentityVerifier.from_settings(settings, dev_issuer=dev_issuer)

    bundles = BundleStore(settings.policies)
    bundles.subscribe(metrics.observe_reload)
    bundles.load_initial()

    live = InMemoryContext(
        calendar=BusinessCalendar.from_strings(**settings.live.business_hours.model_dump()),
        incident=settings.live.incident, risk_level=settings.live.risk_level)
    if log is None:
        log = open_decision_log(settings.audit.backend, sqlite_path=settings.sqlite_path,
                                batch_max=settings.audit.batch_max)
    service = DecisionService(
        bundles=bundles, verifier=verifier, live=live, log=log,  # type: ignore[arg-type]
        clock=clock, max_ttl=timedelta(seconds=settings.max_decision_ttl_s),
        observer=metrics.observe_decision)
    bundles.subscribe(lambda outcome: _record_reload(service, outcome))
    loaded = bundles.current
    service.record_admin_event_sync(
        "bundle.load", principal=None, authorized_by=None,
        detail={"version": loaded.version.as_dict() if loaded else None,
                "directory": str(settings.policies)})
    return Components(settings=settings, bundles=bundles, verifier=verifier,
                      dev_issuer=dev_issuer, live=live, log=log, clock=clock,
                      metrics=metrics, service=service)



def _record_reload(service: DecisionService, outcome: ReloadOutcome) -> None:
    """Every reload attempt, good or refused, goes into the decision log's chain."""
    service.record_admin_event_sync(
        "bundle.reload" if outcome.ok else "bundle.reload_refused",
        principal=outcome.requested_by, authorized_by=outcome.authorized_by,
        detail={"version": outcome.version, "changed": outcome.changed,
                "problems": list(outcome.problems)})
