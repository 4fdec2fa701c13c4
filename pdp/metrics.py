"""Prometheus metrics, on a registry owned by the app (no module-level state)."""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric

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
            registry=self.registry, multiprocess_mode="livemin")  # any worker refused: 0
        self.identity_source_up = Gauge(
            "pdp_identity_source_up",
            "1 if the last read of a trust source (bundle, JWKS) succeeded, 0 if it failed "
            "and the last good copy is in use.", ["source"], registry=self.registry,
            multiprocess_mode="livemin")
        self.identity_source_stale = Gauge(
            "pdp_identity_source_stale",
            "1 if a trust source's last good copy is past its maximum age (its credentials "
            "are denied with identity.trust_stale), else 0.", ["source"],
            registry=self.registry, multiprocess_mode="livemax")
        self.identity_source_failures = Counter(
            "pdp_identity_source_refresh_failures",
            "Failed reads of a trust source (bundle file or endpoint, JWKS, discovery).",
            ["source"], registry=self.registry)
        # The decisions counter's children by (decision, reason), as ``labels()`` returns
        # them: the same objects, found without its checks and lock on every decision.
        # No child is ever removed from the counter, so none here goes stale.
        self._decision_counters: dict[tuple[str, str], Counter] = {}

    def exposition(self) -> bytes:
        """The text ``/metrics`` serves.

        In one process, this registry. Under ``pdp serve --workers N`` (which sets
        ``PROMETHEUS_MULTIPROC_DIR`` for its workers) counters and histograms are
        summed over every worker, and gauges combined as each one's
        ``multiprocess_mode`` says, from the workers' files; the ``Info`` metrics,
        which that mode cannot share, come from the worker that answers (they
        describe the bundle every worker loads from the same source).
        """
        if not multiprocess_mode():
            return generate_latest(self.registry)
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)
        return generate_latest(shared) + generate_latest(_ProcessLocal(self.registry))

    def observe_decision(self, decision: Decision, seconds: float) -> None:
        reason = decision.reason_codes[0] if decision.reason_codes else "none"
        key = (decision.decision, str(reason))
        counter = self._decision_counters.get(key)
        if counter is None:  # the first of its kind: labels() checks and makes the child
            counter = self._decision_counters[key] = self.decisions.labels(*key)
        counter.inc()
        self.latency.observe(seconds)

    def observe_reload(self, outcome: ReloadOutcome) -> None:
        self.bundle_reloads.labels(result="ok" if outcome.ok else "refused").inc()
        self.bundle_last_reload_ok.set(1 if outcome.ok else 0)
        if outcome.ok and outcome.version:
            self.bundle.info({"version": outcome.version})

    def observe_identity_source(self, status: SourceStatus) -> None:
        """After each read of a trust source (``pdp.identity.trust_store``)."""
        self.identity_source_up.labels(source=status.source).set(1 if status.ok else 0)
        self.identity_source_stale.labels(source=status.source).set(1 if status.stale else 0)
        failures = self.identity_source_failures.labels(source=status.source)
        if not status.ok:
            failures.inc()


def multiprocess_mode() -> bool:
    """True when this process keeps its metric values in ``PROMETHEUS_MULTIPROC_DIR``.

    prometheus_client decides once, when it is first imported; this asks it
    rather than the environment, which may have changed since.
    """
    return values.ValueClass is not values.MutexValue


def choose_value_class() -> None:
    """Decide again between one process and ``PROMETHEUS_MULTIPROC_DIR``, for a process
    forked from one that imported prometheus_client before the variable was set
    (``pdp serve --workers N``: its workers are forked after the parent built its
    components). Metrics created afterwards follow the environment."""
    values.ValueClass = values.get_value_class()


def mark_process_dead() -> None:
    """A worker that stops drops out of the ``live*`` gauges (multi-process mode only)."""
    if multiprocess_mode() and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())


class _ProcessLocal:
    """The metrics of ``registry`` that multi-process mode cannot share (``Info``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> list[Metric]:
        return [m for m in self.registry.collect() if m.type in ("info", "stateset", "enum")]
