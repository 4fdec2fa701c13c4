"""Mounting the console on the PDP's FastAPI app."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pdp.audit import rollups
from pdp.audit.console_sessions import SessionRows
from pdp.audit.errors import AuditUnavailable
from pdp.audit.factory import open_console_sessions
from pdp.audit.memory.console_sessions import MemorySessionRows
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
    rows = session_rows(components)
    app.state.console_sessions = SessionStore(rows, components.clock.now)
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        """The API's lifespan, then the session store's connection closed."""
        try:
            async with serve(app) as state:
                yield state
        finally:
            rows.close()

    app.router.lifespan_context = lifespan
    oidc = components.settings.console_oidc
    app.state.console_oidc = OidcClient(oidc) if oidc is not None else None
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")


def session_rows(components: Components) -> SessionRows:
    """Where sessions are kept: beside the durable admin state (the log's SQLite file or
    PostgreSQL schema, shared by every worker and replica), or in this process when the
    admin state itself is (a log handed in by ``pdp check`` or a test, the memory backend)."""
    admin = components.admin_state
    if admin is None or not admin.store.durable:
        return MemorySessionRows()
    return open_console_sessions(components.settings)


__all__ = ["install_console", "session_rows"]
