"""The auditor's and operator's console, served by ``pdp serve`` at ``/console``.

Server-rendered pages (Jinja2 templates, htmx for partial updates, Chart.js for
the overview), with every asset vendored under ``static/`` so it works offline
and needs no Node at run time. Who may see what is the bundle's own Cedar
policies' answer (:mod:`pdp.console.access`).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pdp.components import Components
from pdp.console.routes import router
from pdp.console.session import SessionStore
from pdp.console.web import PREFIX, STATIC


def install_console(app: FastAPI, components: Components) -> None:
    """Mount the console's pages and static assets on ``app``."""
    app.state.console_sessions = SessionStore(components.clock.now)
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")


__all__ = ["install_console"]
