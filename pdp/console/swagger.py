"""``/docs`` without the internet: Swagger UI from the package, not from a CDN.

FastAPI's own ``/docs`` page loads ``swagger-ui-dist`` from jsDelivr. Here the same
page (:func:`fastapi.openapi.docs.get_swagger_ui_html`) points at the copy vendored
under ``pdp/console/static/swagger/`` (npm ``swagger-ui-dist`` 5.36.0, Apache-2.0,
its LICENSE and NOTICE beside it). ReDoc, which has no such copy here, is not served.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS = "/console/static/swagger"


def install_swagger_ui(app: FastAPI, *, path: str = "/docs") -> None:
    """Serve Swagger UI at ``path`` from the vendored assets (create the app with
    ``docs_url=None``, so FastAPI's CDN page is not registered first)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(path, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")


__all__ = ["ASSETS", "install_swagger_ui"]
