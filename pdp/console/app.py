"""Mounting the console on the PDP's FastAPI app."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pdp.audit import rollups
from pdp.audit.errors import AuditUnavailable
from pdp.components import Components
from pdp.console.oidc import OidcClient
from pdp.console.routes import router
from pdp.console.session import SessionStore
from pdp.console.web import PREFIX, STATIC

log = logging.getLogger("pdp.console")


def install_console(app: FastAPI, components: Components) -> None:
    """Mount the console's pages and static assets on ``app``, and make sure the decision
    log has the overview's index (:func:`pdp.audit.rollups.prepare_store`)."""
    try:
        rollups.prepare_store(components.log)
    except (AuditUnavailable, sqlite3.Error) as e:  # the pages still work, only slower
        log.warning("console: could not create the overview index: %s", e)
    app.state.console_sessions = SessionStore(components.clock.now)
    oidc = components.settings.console_oidc
    app.state.console_oidc = OidcClient(oidc) if oidc is not None else None
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")


__all__ = ["install_console"]
