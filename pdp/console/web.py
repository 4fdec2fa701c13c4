"""What every console response shares: templates, security headers, the session.

Security headers (:data:`SECURITY_HEADERS`) on every console answer:

- a strict Content-Security-Policy: scripts, styles, images and fetches from this
  origin only, no inline script or style, no plugins, no framing, forms post
  only here. The page data charts need travels in ``<script type="application/json">``
  blocks, which the browser never executes;
- ``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy: same-origin`` and
  ``Cache-Control: no-store`` (pages show the log: no shared cache keeps them).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from pdp.components import Components
from pdp.console.session import COOKIE, Session, SessionStore, SessionsUnavailable

HERE = Path(__file__).parent
STATIC = HERE / "static"
PREFIX = "/console"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True,
                                                       ensure_ascii=False, default=str)


def _json_script(value: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` breakout)."""
    text = json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("&", "\\u0026"))  # noqa: S704 - escaped above


templates.env.filters["json_script"] = _json_script


def secured(response: Response) -> Response:
    """``response`` with the console's security headers."""
    response.headers.update(SECURITY_HEADERS)
    return response


def render(request: Request, template: str, status_code: int = 200,
           **context: Any) -> Response:
    """A page (or, for an htmx request, the same template: partials extend nothing)."""
    session: Session | None = getattr(request.state, "console_session", None)
    components: Components = request.app.state.components
    page = templates.TemplateResponse(request, template, {
        "session": session, "prefix": PREFIX, "dev": components.settings.dev,
        "oidc": getattr(request.app.state, "console_oidc", None) is not None, **context},
        status_code=status_code)
    return secured(page)


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.console_sessions
    return store


async def current_session(request: Request) -> Session | None:
    """The signed-in session of this request, or None (no cookie, unknown, expired).

    Read on a worker thread (the store is a database: never block the event loop).
    Raises :class:`~pdp.console.session.SessionsUnavailable` when the store cannot say
    (callers answer 503: nobody is let in on a guess)."""
    session = await asyncio.to_thread(sessions(request).get, request.cookies.get(COOKIE))
    request.state.console_session = session
    return session


def sessions_down(request: Request, error: SessionsUnavailable) -> Response:
    """The answer when the session store cannot be reached: 503, nothing done."""
    page = templates.TemplateResponse(request, "refused.html", {
        "session": None, "prefix": PREFIX, "title": "Sessions unavailable",
        "detail": f"The console cannot check who you are right now ({error}); "
                  "nothing was shown or changed. Try again shortly.",
        "decision_id": None}, status_code=503)
    return secured(page)


def to_signin(request: Request) -> Response:
    """Send a person without a session to sign in, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request"):  # htmx follows HX-Redirect with a full page load
        response: Response = HTMLResponse("", status_code=401,
                                          headers={"hx-redirect": f"{PREFIX}/signin"})
    else:
        from urllib.parse import quote

        response = RedirectResponse(f"{PREFIX}/signin?next={quote(target, safe='')}",
                                    status_code=303)
    return secured(response)


def set_session_cookie(response: Response, session: Session, *, secure: bool) -> None:
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="lax", path=PREFIX,
                        secure=secure)


def same_origin(request: Request) -> bool:
    """Whether a state-changing request came from a page of this origin (``Origin`` or,
    lacking it, ``Referer``); a defence beside the CSRF token, not instead of it."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    own = f"{request.url.scheme}://{request.url.netloc}"
    return origin == own or origin.startswith(own + "/")


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") \
            and "\\" not in target and "://" not in target:
        return target
    return f"{PREFIX}/decisions"


__all__ = ["CSP", "PREFIX", "SECURITY_HEADERS", "STATIC", "current_session", "render",
           "safe_next", "same_origin", "secured", "sessions", "sessions_down", "set_session_cookie",
           "templates", "to_signin"]
