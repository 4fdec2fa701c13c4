"""The HTTP API's application factory (:func:`create_api`); ``pdp.server`` adds the
console beside it to make the application ``pdp serve`` runs."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from pdp import __version__
from pdp.api import audit as audit_api
from pdp.api import authorize, authzen, context_admin, decisions, gateways, ops, revocations
from pdp.api import broker as broker_api
from pdp.api import grants as grants_api
from pdp.api.admin_auth import install_admin_handler
from pdp.api.fastpath import FastPath
from pdp.api.limits import RequestLimits
from pdp.api.openapi import install_openapi
from pdp.api.pep import check_pep_allowlist, install_pep_handler
from pdp.api.problems import install_problem_handlers
from pdp.api.requestlog import RequestLog, log_event, request_logger
from pdp.components import Components, watch_interval_s
from pdp.metrics import mark_process_dead

DESCRIPTION = """
Policy decision point for machine identities. A PEP asks **may this workload do
this action on this resource, right now?**; the PDP verifies the workload's
credential (JWT-SVID, X.509-SVID or an issuer's JWT), adds live context,
evaluates the bundle's Cedar policies, records the decision durably and
answers with reasons a person can read.
"""


NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's native OpenTelemetry off. With it on (FastAPI's default), every request first
asks whether a global tracer, meter or logger provider is configured, reading the
environment each time (about a tenth of the decision doors' own cost, measured by
``python -m bench api_layer``); ``pdp serve`` configures none, and reports through its
own ``/metrics``, request log and decision log."""


def create_api(components: Components, *, watch: bool | None = None,
               freeze_gc: bool = False) -> FastAPI:
    """Build the HTTP API around already-wired ``components`` (closed on shutdown).

    ``freeze_gc``: for a serving process (``pdp serve``), see :func:`freeze_startup_objects`
    and :func:`collect_young_less_often`.
    """
    watch = components.settings.watch_policies if watch is None else watch

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        check_pep_allowlist(components.settings)  # an empty one outside --dev: no start
        if watch:
            components.bundles.start_watching(watch_interval_s(components.settings))
        components.verifier.start_refreshing(components.clock.now)  # trust bundles, JWKS
        if freeze_gc:
            collect_young_less_often()
            freeze_startup_objects()
            components.bundles.subscribe(
                lambda outcome: freeze_loaded_bundle() if outcome.changed else None)
        try:
            yield
        finally:
            # Said before the log closes (it may sign a last checkpoint) and after: uvicorn
            # re-raises SIGTERM once the app is down, so nothing after this would be printed.
            log_event("stopping", pid=os.getpid())
            components.close()
            mark_process_dead()  # --workers N: this worker leaves the live gauges
            log_event("stopped", pid=os.getpid())

    # /docs from the package's own Swagger UI copy (works offline; pdp.console.swagger)
    app = FastAPI(title="PDP", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, telemetry=NO_NATIVE_TELEMETRY)
    app.state.components = components
    install_problem_handlers(app)
    install_admin_handler(app)
    install_pep_handler(app)
    app.include_router(authorize.router)
    app.include_router(decisions.router)
    app.include_router(audit_api.router)  # auditors: /v1/decisions, /v1/audit/*, /v1/identities
    app.include_router(ops.router)
    app.include_router(grants_api.router)  # task grants: /v1/grants
    app.include_router(revocations.router)  # /v1/revocations (identity admin)
    # The credential broker: /v1/token (RFC 8693), its JWKS and metadata, /v1/tasks.
    app.include_router(broker_api.router)
    # AuthZEN 1.0: /access/v1/*, /.well-known/authzen-configuration
    app.include_router(authzen.router)
    app.include_router(gateways.router)  # Envoy ext_authz, nginx auth_request: /v1/gateway/*
    app.include_router(context_admin.router)  # /v1/context
    context_admin.install_context_handler(app)
    install_openapi(app)  # every problem answer declared (pdp.api.openapi)
    app.add_middleware(FastPath)  # inside the body limit: /v1/authorize without routing
    # 431 / bad X-Request-ID / 413 before anything is parsed
    app.add_middleware(RequestLimits, max_body_bytes=components.settings.max_body_bytes)
    log = components.settings.log
    request_logger(log.format)  # also for the `stopping` line when requests are not logged
    if log.requests:  # outermost: every answer gets its line, the limits' own included
        app.add_middleware(RequestLog, fmt=log.format)
    return app


def freeze_imported_modules() -> None:
    """Before a serving process loads its bundle, put what its imports built (modules,
    classes, functions: ~100,000 objects) out of the cyclic garbage collector's reach,
    once what they left behind is collected.

    Loading 10,000 policies allocates about a million objects, and the collector's full
    collections on the way walked the imports' objects each time as well: ~1 s of CPU
    of a 10,000-policy start in ``pdp serve`` (bench/RESULTS.md, "hstart3"), against
    ~0.07 s for this collection. Modules live as long as the process anyway.
    """
    gc.collect()
    gc.freeze()


def freeze_startup_objects() -> None:
    """Put everything built so far (the bundle, schema, routes: ~85,000 objects for the
    example bundle) out of the cyclic garbage collector's reach.

    A full collection of a serving process otherwise walks all of them, ~20 ms during
    which no request moves: the p99 of every request in flight. Frozen, it takes well
    under a millisecond. Reference counting still frees what they drop.
    Ref: https://docs.python.org/3/library/gc.html#gc.freeze
    """
    gc.collect()
    gc.freeze()


def freeze_loaded_bundle() -> None:
    """After a bundle load (``pdp serve``'s first, and every reload), freeze the new
    bundle without a full collection.

    At 10,000 policies a full collection walked every object of the process for about
    half a second: during a reload no request moved meanwhile (the stall
    ``bench/startup.py`` measures), and at start it delayed readiness by as much. None is
    needed: a bundle holds no reference cycles (``tests/api/test_gc_freeze.py``), so
    reference counting frees the old one, frozen or not, when its last decision drops it.
    The young generations, which hold the loader's own short-lived cycles, are collected
    first so that none of them is frozen for good; what older cycles a load left (33
    objects at 10,000 policies) stays frozen, once per load.
    """
    gc.collect(1)
    gc.freeze()


YOUNG_COLLECTION_EVERY = 10_000
"""Allocations between two collections of the youngest generation in ``pdp serve``
(CPython's default: 700)."""


def collect_young_less_often() -> None:
    """Let the cyclic collector look at young objects every 10,000 allocations, not 700.

    A decision allocates a few hundred containers (the request, the record and
    its copies), so at 700 the youngest generation was
    collected every request or two, each time walking everything in flight:
    in ``bench/audit_log.py`` that cost about a third of the log's append
    throughput. Reference counting still frees all but cycles at once; cycles
    wait a little longer. The older generations keep their thresholds.
    """
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, oldest)
