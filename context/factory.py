"""Build the live context from settings, and attach the behaviour monitor to a service.

``pdp.components`` calls these once; nothing here is global.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from context.behaviour import (
    BehaviourMonitor,
    BehaviourRules,
    RaiseRecorder,
    RiskRaise,
    observation_of,
)
from context.calendar import BusinessCalendar
from context.live import ConfiguredValues, DegradedDefaults, Freshness, LiveContext
from context.memory import InMemoryContext
from context.redis_backend import RedisContextStore, RedisLink, RedisRevocationStore

if TYPE_CHECKING:
    from context.revocations import RevocationStore
    from pdp.config import Settings

log = logging.getLogger("pdp.context")


def open_live_context(settings: Settings) -> LiveContext:
    """The configured live context: in process (default) or shared through Redis."""
    cfg = settings.context
    calendar = BusinessCalendar.from_strings(**settings.live.business_hours.model_dump())
    freshness = Freshness(incident_max_age_s=cfg.max_age.incident_s,
                          risk_max_age_s=cfg.max_age.risk_s)
    degraded = DegradedDefaults(incident_level=cfg.degraded.incident_level,
                                global_risk_level=cfg.degraded.global_risk_level,
                                principal_risk_level=cfg.degraded.principal_risk_level,
                                ttl_s=cfg.degraded.decision_ttl_s)
    if cfg.backend == "memory":
        return InMemoryContext(calendar=calendar, incident=settings.live.incident,
                               risk_level=settings.live.risk_level, freshness=freshness,
                               degraded=degraded, risk_ttl_s=cfg.risk_ttl_s)
    link = RedisLink(cfg.redis_url, prefix=cfg.redis_prefix, resync_s=cfg.resync_s,
                     timeout_s=cfg.redis_timeout_s)
    return LiveContext(store=RedisContextStore(link), calendar=calendar, freshness=freshness,
                       degraded=degraded, risk_ttl_s=cfg.risk_ttl_s,
                       configured=ConfiguredValues(incident=settings.live.incident,
                                                   risk_level=settings.live.risk_level))


def shared_revocations(live: object) -> RevocationStore | None:
    """Revocations in the same Redis as ``live`` (None for an in-process context)."""
    store = getattr(live, "store", None)
    if isinstance(store, RedisContextStore):
        return RedisRevocationStore(store.link)
    return None


def behaviour_rules(settings: Settings) -> BehaviourRules:
    b = settings.context.behaviour
    return BehaviourRules(
        enabled=b.enabled, window_s=b.window_s, deny_burst=b.deny_burst,
        deny_burst_level=b.deny_burst_level, deny_reasons=frozenset(b.deny_reasons),
        rate_factor=b.rate_factor, rate_min_requests=b.rate_min_requests,
        rate_level=b.rate_level, baseline_s=b.baseline_s,
        baseline_warmup_s=b.baseline_warmup_s, new_source_level=b.new_source_level,
        new_pep_level=b.new_pep_level, new_source_min_history=b.new_source_min_history,
        source_keys=tuple(b.source_keys), revoked_uses=b.revoked_uses,
        revoked_level=b.revoked_level, expired_uses=b.expired_uses,
        expired_level=b.expired_level, decay_s=b.decay_s, max_principals=b.max_principals)


class BehaviourWatch:
    """Feeds each decision to a ``BehaviourMonitor``; applies and records its raises.

    Install it as a ``DecisionService`` listener: ``service.listeners.append(watch)``.
    """

    def __init__(self, *, service: Any, live: LiveContext, rules: BehaviourRules) -> None:
        self.live = live
        self.rules = rules
        self.recorder = RaiseRecorder(
            lambda event, detail: service.record_admin_event_sync(
                event, principal=None, authorized_by=None, detail=detail),
            now=service.clock.now,
            current_entry=lambda principal: live.store.view().state.auto_risk.get(principal))
        self.monitor = BehaviourMonitor(rules, current_level=live.automatic_level,
                                        on_raise=self._apply)

    def __call__(self, decision: Any, request: Any) -> None:
        try:
            observation = observation_of(decision, request, self.rules)
            if observation is not None:
                self.monitor.observe(observation)
        except Exception:  # noqa: BLE001 - a listener never fails a decision
            log.exception("behaviour monitor")

    def _apply(self, raise_: RiskRaise) -> None:
        self.live.raise_automatically(raise_.principal_id, raise_.entry())
        self.recorder.submit(raise_)

    def close(self) -> None:
        self.recorder.close()


def watch_behaviour(service: Any, live: object, settings: Settings) -> BehaviourWatch | None:
    """Attach the behaviour monitor to ``service`` (None when disabled or not a LiveContext)."""
    rules = behaviour_rules(settings)
    if not rules.enabled or not isinstance(live, LiveContext):
        return None
    watch = BehaviourWatch(service=service, live=live, rules=rules)
    service.listeners.append(watch)
    return watch


__all__ = ["BehaviourWatch", "behaviour_rules", "open_live_context", "shared_revocations",
           "watch_behaviour"]
