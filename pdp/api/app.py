"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pdp.api import authorize, decisions, ops
from pdp.api.admin_auth import install_admin_handler
from pdp.api.limits import BodySizeLimit
from pdp.api.problems import install_problem_handlers
from pdp.components import Components

DESCRIPTION = """
Policy decision point for machine identities. A PEP asks **may this workload do
this action on this resource, right now?**; the PDP verifies the workload's
credential (JWT-SVID, X.509-SVID or an issuer's JWT), adds live context,
evaluates the bundle's Cedar policies, records the decision durably and
answers with reasons a person can read.
"""


def create_app(components: Components, *, watch: bool | None = None) -> FastAPI:
    """Build the app around already-wired ``components`` (closed on shutdown)."""
    watch = components.settings.watch_policies if watch is None else watch

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if watch:
            components.bundles.start_watching()
        try:
            yield
        finally:
            components.close()

    app = FastAPI(title="PDP", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.components = components
    install_problem_handlers(app)
    install_admin_handler(app)
    app.include_router(authorize.router)
    app.include_router(decisions.router)
    app.include_router(ops.router)
    app.add_middleware(BodySizeLimit, max_bytes=components.settings.max_body_bytes)
    return app
