"""The application ``pdp serve`` runs: the HTTP API (:mod:`pdp.api`) with the web
console (:mod:`pdp.console`) and the offline Swagger UI beside it.

The console is a client of the API's own handlers, so it sits above ``pdp.api``; this
module, above both, is where they are put together (``tests/test_layering.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from fastapi import FastAPI

from pdp.api.app import create_api
from pdp.components import Components, build_components
from pdp.config import Settings, load_settings
from pdp.console.app import install_console
from pdp.console.swagger import install_swagger_ui
from pdp.engine.store import BundleStore


def create_app(components: Components, *, watch: bool | None = None,
               freeze_gc: bool = False) -> FastAPI:
    """The served app around already-wired ``components`` (closed on shutdown): the API
    (:func:`pdp.api.app.create_api`, same ``watch`` and ``freeze_gc``), ``/console``
    and ``/docs``."""
    app = create_api(components, watch=watch, freeze_gc=freeze_gc)
    install_console(app, components)  # /console: the auditor's and operator's web pages
    install_swagger_ui(app)  # /docs, from the package's own copy (works offline)
    return app


SETTINGS_ENV = "PDP_SERVE_SETTINGS_JSON"
"""Where ``pdp serve --workers N`` hands its resolved settings (JSON) to each worker."""


def app_from_env() -> FastAPI:
    """The app of one worker process: ``uvicorn --factory pdp.server:app_from_env``.

    uvicorn starts several workers only from an import string, so each worker
    builds its own ``Components`` here: from the settings ``pdp serve`` resolved
    (file, ``PDP_*`` and flags, passed as JSON in ``PDP_SERVE_SETTINGS_JSON``), or,
    without them, from the defaults and ``PDP_*``. The workers share
    the decision log file (one hash chain: see ``pdp.audit.sqlite``) and, through
    ``PROMETHEUS_MULTIPROC_DIR``, their metrics.
    """
    return create_app(build_components(_settings_from_env()), freeze_gc=True)


def supervised_app(attach: Callable[[BundleStore], None]) -> FastAPI:
    """The app of a worker whose supervisor owns reloads (:mod:`pdp.cli.workers`): built
    as :func:`app_from_env`, its bundle store handed to ``attach`` (the worker's link to
    the supervisor), and no watcher of its own."""
    components = build_components(_settings_from_env())
    attach(components.bundles)
    return create_app(components, watch=False, freeze_gc=True)


def _settings_from_env() -> Settings:
    raw = os.environ.get(SETTINGS_ENV)
    return Settings.model_validate_json(raw) if raw else load_settings()


__all__ = ["SETTINGS_ENV", "app_from_env", "create_app", "supervised_app"]
