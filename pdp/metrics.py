"""Prometheus metrics, on a registry owned by the app (no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from pdp.decision.model import Decision
from pdp.engine.store import ReloadOutcome
from pdp.identity.trust_store import SourceStatus

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "pdp_decisions", "Decisions by outcome and first reason code.",
            ["decision", "reason"], registry=self.registry)
        self.latency = Histogram(
            "pdp_decision_latency_seconds", "Time from request to committed decision.",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.bundle = Info("pdp_bundle", "The policy bundle serving decisions.",
                           registry=self.registry)
        self.bundle_reloads = Counter(
            "pdp_bundle_reloads", "Bundle reload attempts by result.", ["result"],
            registry=self.registry)
        self.bundle_last_reload_ok = Gauge(
            "pdp_bundle_last_reload_ok", "1 if the last reload succeeded, 0 if it was refused.",
            registry=self.registry)
        self.identity_source_up = Gauge(
            "pdp_identity_source_up",
            "1 if the last read of a trust source (bundle, JWKS) succeeded, 0 if it failed "
            "and the last good copy is in use.", ["source"], registry=self.registry)
        self.identity_source_failures = Counter(
            "pdp_identity_source_refresh_failures",
            "Failed reads of a trust source (bundle file or endpoint, JWKS, discovery).",
            ["source"], registry=self.registry)

    def observe_decision(self, decision: Decision, seconds: float) -> None:
        reason = decision.reason_codes[0] if decision.reason_codes else "none"
        self.decisions.labels(decision=decision.decision, reason=str(reason)).inc()
        self.latency.observe(seconds)

    def observe_reload(self, outcome: ReloadOutcome) -> None:
        self.bundle_reloads.labels(result="ok" if outcome.ok else "refused").inc()
        self.bundle_last_reload_ok.set(1 if outcome.ok else 0)
        if outcome.ok and outcome.version:
            self.bundle.info({"version": outcome.version})

    def observe_identity_source(self, status: SourceStatus) -> None:
        """After each read of a trust source (``pdp.identity.trust_store``)."""
        self.identity_source_up.labels(source=status.source).set(1 if status.ok else 0)
        failures = self.identity_source_failures.labels(source=status.source)
        if not status.ok:
            failures.inc()
