"""The console's pages, at ``/console``: find, read, replay and verify decisions; see
the traffic, identities, live context and policies.

Each page names the admin action it needs and calls the JSON API's own handler
for its data (``pdp.api.audit``, ``pdp.api.context_admin``), with the caller the
bundle's policies let in: the same checks, the same ``audit.*`` events in the
log, the same answers — rendered as HTML. Filters are query parameters, so
every page's URL can be shared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from pdp.api import audit as audit_api
from pdp.api import context_admin
from pdp.api import grants as grants_api
from pdp.api.admin_auth import AdminCaller, AdminRefused
from pdp.api.deps import request_id
from pdp.audit import context_history, rollups
from pdp.audit.auditing.archive import policy_texts
from pdp.audit.auditing.auditor import FILTER_FIELDS, filter_detail, make_filter
from pdp.audit.errors import AuditUnavailable
from pdp.audit.query import MAX_PAGE
from pdp.audit.records import normalize_ts
from pdp.components import Components
from pdp.console.access import authorize_page
from pdp.console.dev_signin import dev_groups, dev_identities
from pdp.console.live_view import (
    RiskHistory,
    RiskRow,
    business_hours,
    incident_views,
    risk_history,
    risk_part,
    risk_rows,
)
from pdp.console.oidc import OidcClient, OidcError, id_token_nonce
from pdp.console.session import COOKIE, Session, SessionsUnavailable, csrf_ok
from pdp.console.web import (
    PREFIX,
    current_session,
    render,
    safe_next,
    same_origin,
    secured,
    sessions,
    sessions_down,
    set_session_cookie,
    to_signin,
)
from pdp.engine.bundle import Bundle
from pdp.identity.errors import IdentityError
from pdp.identity.model import BearerToken

router = APIRouter(prefix=PREFIX, include_in_schema=False)

HISTORY_DAYS = 90
"""How far back a principal's page reads its risk history."""

Handler = Callable[[Request, Session, AdminCaller], Awaitable[Response]]


def _components(request: Request) -> Components:
    components: Components = request.app.state.components
    return components


def _bundle(components: Components) -> Bundle:
    """The bundle being served (``pdp serve`` does not start without one)."""
    bundle = components.bundles.current
    if bundle is None:  # pragma: no cover - only before the first load
        raise RuntimeError("no policy bundle is loaded")
    return bundle


async def guarded(request: Request, action: str, handler: Handler, *,
                  csrf: str | None = None, changes: bool = False,
                  otherwise: str | None = None) -> Response:
    """Run ``handler`` for a signed-in person whom the bundle permits ``action`` (or, when
    refused it, ``otherwise``: a page with parts for either; ``request.state.granted``
    names the action that let them in).

    No session: to the sign-in page. A state-changing request (``changes``) also
    needs this origin and the session's CSRF token, else 403 and nothing changes.
    A credential that fails (an expired ID token): the session ends. A policy deny:
    403 with the decision's explanation and id.
    """
    try:
        session = await current_session(request)
    except SessionsUnavailable as e:
        return sessions_down(request, e)
    if session is None:
        return to_signin(request)
    if changes and not (same_origin(request) and csrf_ok(
            session, csrf or request.headers.get("x-csrf-token"))):
        return render(request, "refused.html", 403, title="Refused",
                      detail="This form is stale or did not come from this console "
                             "(CSRF check failed); nothing was changed. Reload the page.",
                      decision_id=None)
    try:
        try:
            caller = await authorize_page(_components(request), session, action,
                                          request_id(request))
            request.state.granted = action
        except AdminRefused as first:
            if otherwise is None or first.status != 403:
                raise
            caller = await authorize_page(_components(request), session, otherwise,
                                          request_id(request))
            request.state.granted = otherwise
    except AdminRefused as refused:
        if refused.status == 401:
            try:
                await asyncio.to_thread(sessions(request).end, session.id)
            except SessionsUnavailable as e:
                return sessions_down(request, e)
            return to_signin(request)
        return render(request, "refused.html", 403, title="Forbidden",
                      detail=refused.decision.explanation,
                      decision_id=refused.decision.decision_id, action=action)
    return await handler(request, session, caller)


def _body(response: Response) -> Any:
    return json.loads(bytes(response.body))


# -- signing in and out --------------------------------------------------------------


@router.get("")
async def home() -> Response:
    return secured(RedirectResponse(f"{PREFIX}/decisions", status_code=303))


@router.get("/signin")
async def signin_page(request: Request, next: str | None = None) -> Response:
    components = _components(request)
    groups = dev_groups(_bundle(components)) if components.settings.dev else []
    return render(request, "signin.html", groups=groups, next=safe_next(next))


@router.post("/signin/dev")
async def signin_dev(request: Request, principal: Annotated[str, Form(max_length=2048)],
                     next: Annotated[str | None, Form(max_length=2048)] = None) -> Response:
    """``--dev`` only: sign in as a workload of the bundle (see :mod:`.dev_signin`)."""
    components = _components(request)
    if not components.settings.dev or components.dev_issuer is None:
        return render(request, "refused.html", 404, title="Not available",
                      detail="Dev sign-in exists only under `pdp serve --dev`.",
                      decision_id=None)
    if not same_origin(request):
        return render(request, "refused.html", 403, title="Refused",
                      detail="Sign-in must come from this console's own page.",
                      decision_id=None)
    if principal not in dev_identities(_bundle(components)):
        return render(request, "refused.html", 400, title="Unknown identity",
                      detail="Choose one of the bundle's workloads.", decision_id=None)
    parents = _bundle(components).workload_parents.get(principal, ())
    try:
        session = await asyncio.to_thread(partial(
            sessions(request).create, principal=principal, dev_principal=principal,
            groups=tuple(p["id"] for p in parents)))
    except SessionsUnavailable as e:
        return sessions_down(request, e)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, session, secure=request.url.scheme == "https")
    return secured(response)


def _oidc(request: Request) -> OidcClient | None:
    client: OidcClient | None = getattr(request.app.state, "console_oidc", None)
    return client


@router.get("/oidc/login")
async def oidc_login(request: Request, next: str | None = None) -> Response:
    """Start the authorization code flow with PKCE (see :mod:`pdp.console.oidc`)."""
    client = _oidc(request)
    if client is None:
        return render(request, "refused.html", 404, title="Not available",
                      detail="No OpenID provider is configured (console_oidc).",
                      decision_id=None)
    redirect = client.config.redirect_uri or str(request.url_for("oidc_callback"))
    try:
        login = client.pending.start(redirect_uri=redirect, next=safe_next(next),
                                     now=_components(request).clock.now())
        target = await client.authorization_url(login)
    except OidcError as e:
        return render(request, "refused.html", 503, title="Sign-in unavailable",
                      detail=str(e), decision_id=None)
    return secured(RedirectResponse(target, status_code=303))


@router.get("/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request, state: str | None = None, code: str | None = None,
                        error: str | None = None) -> Response:
    """Finish the flow: our ``state``, the code exchanged with the PKCE verifier, the ID
    token verified by the PDP's verifier with our ``nonce``; then a fresh session."""
    client = _oidc(request)
    components = _components(request)
    if client is None:
        return render(request, "refused.html", 404, title="Not available",
                      detail="No OpenID provider is configured.", decision_id=None)
    now = components.clock.now()
    try:
        login = client.pending.finish(state, now)
        if error or not code:
            raise OidcError(f"the provider did not sign you in ({error or 'no code'})")
        id_token = await client.exchange(login, code)
        identity = await asyncio.to_thread(components.verifier.verify,
                                           BearerToken(id_token), now)
        if id_token_nonce(id_token) != login.nonce:
            raise OidcError("the ID token does not answer this sign-in (nonce)")
    except OidcError as e:
        return render(request, "refused.html", 400, title="Sign-in failed", detail=str(e),
                      decision_id=None)
    except IdentityError as e:
        return render(request, "refused.html", 401, title="Sign-in refused",
                      detail=f"the ID token was refused: {e}", decision_id=None)
    try:
        session = await asyncio.to_thread(partial(
            sessions(request).create, principal=identity.principal_id,
            credential=BearerToken(id_token), groups=tuple(sorted(identity.groups)),
            expires=identity.expires_at))
    except SessionsUnavailable as e:
        return sessions_down(request, e)
    response = RedirectResponse(login.next, status_code=303)
    set_session_cookie(response, session, secure=request.url.scheme == "https")
    return secured(response)


@router.post("/signout")
async def signout(request: Request, csrf: Annotated[str | None, Form()] = None) -> Response:
    try:
        session = await current_session(request)
        if session is not None and csrf_ok(session, csrf) and same_origin(request):
            await asyncio.to_thread(sessions(request).end, session.id)
    except SessionsUnavailable as e:  # not signed out: say so, keep the cookie
        return sessions_down(request, e)
    if session is not None and not (csrf_ok(session, csrf) and same_origin(request)):
        return render(request, "refused.html", 403, title="Refused",
                      detail="Sign-out form failed its CSRF check.", decision_id=None)
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return secured(response)


# -- decisions -------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    """The search filters in the URL (empty ones dropped), in FILTER_FIELDS order."""
    return {k: request.query_params[k] for k in FILTER_FIELDS
            if request.query_params.get(k, "").strip()}


@router.get("/decisions")
async def decisions_page(request: Request, cursor: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        components = _components(request)
        values = _filters(request)
        outcome, kind = values.get("decision"), values.get("kind")
        if outcome not in (None, "allow", "deny") or kind not in (None, "decision", "admin"):
            return render(request, "refused.html", 400, title="Invalid filter",
                          detail="decision is allow or deny; kind is decision or admin",
                          decision_id=None)
        answer = await audit_api.list_decisions(
            request, components, caller, limit=limit, cursor=cursor,
            principal=values.get("principal"), principal_prefix=values.get("principal_prefix"),
            action=values.get("action"), resource=values.get("resource"),
            decision=cast(Literal["allow", "deny"] | None, outcome),
            policy=values.get("policy"), reason_code=values.get("reason_code"),
            pep=values.get("pep"), kind=cast(Literal["decision", "admin"] | None, kind),
            since=values.get("since"), until=values.get("until"))
        body = _body(answer)
        error = body.get("detail") if answer.status_code != 200 else None
        counts = None
        if error is None and values.get("since") and values.get("until"):
            try:
                total, denies = await asyncio.to_thread(rollups.counts, components.log,
                                                        values["since"], values["until"])
                counts = {"total": total, "deny": denies, "allow": total - denies}
            except ValueError:
                counts = None
        template = "decisions_rows.html" if request.headers.get("hx-request") \
            else "decisions.html"
        return render(request, template, 400 if error else 200, filters=values,
                      records=body.get("decisions", []), next_cursor=body.get("next_cursor"),
                      error=error, counts=counts, limit=limit, title="Decisions")

    return await guarded(request, "audit.read", handler)


@router.get("/decisions.jsonl")
async def export_page(request: Request) -> Response:
    """The current search as JSON Lines (newest first), as many pages as it has."""
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        components = _components(request)
        try:
            flt = make_filter(_filters(request), components.bundles.current)
        except ValueError as e:
            return render(request, "refused.html", 400, title="Invalid filter", detail=str(e),
                          decision_id=None)
        try:
            await components.service.record_admin_event(
                "audit.export", principal=caller.principal, authorized_by=caller.decision_id,
                detail={"format": "jsonl", "filters": filter_detail(flt), "door": "console"},
                request_id=request_id(request))
        except AuditUnavailable as e:
            return render(request, "refused.html", 503, title="Export not recorded",
                          detail=str(e), decision_id=None)

        async def lines() -> AsyncIterator[str]:
            cursor: str | None = None
            while True:
                page = await asyncio.to_thread(components.log.query, flt, MAX_PAGE, cursor)
                for record in page.records:
                    yield json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
                if page.next_cursor is None:
                    return
                cursor = page.next_cursor

        return secured(StreamingResponse(lines(), media_type="application/x-ndjson", headers={
            "content-disposition": 'attachment; filename="decisions.jsonl"'}))

    return await guarded(request, "audit.export", handler)


@router.get("/decisions/{decision_id}")
async def decision_page(request: Request, decision_id: str) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        answer = await audit_api.get_decision(decision_id, request, _components(request),
                                              caller)
        if answer.status_code != 200:
            return render(request, "refused.html", answer.status_code, title="Not found",
                          detail=_body(answer).get("detail"), decision_id=None)
        return render(request, "decision.html", d=_body(answer), title="Decision")

    return await guarded(request, "audit.read", handler)


@router.post("/decisions/{decision_id}/replay")
async def replay_page(request: Request, decision_id: str,
                      csrf: Annotated[str | None, Form()] = None) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        answer = await audit_api.replay_decision(decision_id, request, _components(request),
                                                 caller)
        return render(request, "replay.html", answer.status_code, r=_body(answer))

    return await guarded(request, "audit.replay", handler, csrf=csrf, changes=True)


# -- overview --------------------------------------------------------------------------


def _range(request: Request, components: Components) -> tuple[str, str]:
    now = components.clock.now()
    since = request.query_params.get("since") or normalize_ts(now - timedelta(hours=24))
    until = request.query_params.get("until") or normalize_ts(now + timedelta(seconds=1))
    return normalize_ts(since), normalize_ts(until)


@router.get("/overview")
async def overview_page(request: Request) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        components = _components(request)
        try:
            since, until = _range(request, components)
            ov = await asyncio.to_thread(rollups.overview, components.log, since, until)
        except ValueError as e:
            return render(request, "refused.html", 400, title="Invalid range", detail=str(e),
                          decision_id=None)
        chart = {"buckets": [[b.start, b.end, b.allow, b.deny] for b in ov.buckets],
                 "decisions": f"{PREFIX}/decisions"}
        return render(request, "overview.html", ov=ov, chart=chart, title="Overview")

    return await guarded(request, "audit.read", handler)


# -- identities ------------------------------------------------------------------------


@router.get("/identities")
async def identities_page(request: Request, flagged: bool = False) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        answer = await audit_api.identities(request, _components(request), caller,
                                            flagged=flagged)
        return render(request, "identities.html", answer.status_code, inv=_body(answer),
                      flagged=flagged, title="Identities")

    return await guarded(request, "audit.read", handler)


@router.get("/identities/{principal:path}")
async def identity_page(request: Request, principal: str) -> Response:
    """One principal: its decisions and inventory entry (``audit.read``), its risk now
    with the evidence (``context.read``), its risk history from the log (either), and
    its task grants (``policy.grants.read``). Each part is shown to those allowed it."""
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        components = _components(request)
        now = components.clock.now()
        audit_caller = caller if request.state.granted == "audit.read" else None
        records, entry = None, None
        if audit_caller is not None:
            answer = await audit_api.list_decisions(request, components, audit_caller,
                                                    principal=principal, limit=50)
            records = _body(answer).get("decisions", [])
            inv = _body(await audit_api.identities(request, components, audit_caller,
                                                   principal=principal))
            entry = next((e for e in inv.get("identities", [])
                          if e["principal"] == principal), None)
        ctx_caller = caller if audit_caller is None else await _also(
            components, session, "context.read", request)
        risk: RiskRow | None = None
        if ctx_caller is not None:
            described = _body(await context_admin.show_context(components, ctx_caller,
                                                               principal=principal))
            rows = risk_rows({"principals": {
                principal: described["risk"]["principals"].get(principal, {})}}, now)
            risk = rows[0] if rows else RiskRow(principal, 0, ())
        history, history_error = RiskHistory(), None
        try:  # context history from the log: for either permission (see the docstring)
            events = await asyncio.to_thread(
                context_history.admin_events, components.log, context_history.RISK_EVENTS,
                since=normalize_ts(now - timedelta(days=HISTORY_DAYS)),
                until=normalize_ts(now + timedelta(seconds=1)), subject=principal)
            history = risk_history(events, now)
        except Exception as e:  # noqa: BLE001 - a read for display: say it, show the rest
            history_error = str(e) or type(e).__name__
        grants = None
        grants_caller = await _also(components, session, "policy.grants.read", request)
        if grants_caller is not None:  # as GET /v1/grants decides
            listed = await grants_api.list_grants(components, grants_caller,
                                                  include_inactive=True)
            grants = [g for g in listed["grants"] if g["principal"] == principal]
        parents = _bundle(components).workload_parents.get(principal, ())
        return render(request, "identity.html", principal=principal, entry=entry,
                      records=records, risk=risk, grants=grants,
                      history=history, history_error=history_error,
                      history_days=HISTORY_DAYS, groups=[p["id"] for p in parents],
                      title=principal)

    return await guarded(request, "audit.read", handler, otherwise="context.read")


async def _also(components: Components, session: Session, action: str,
                request: Request) -> AdminCaller | None:
    """The caller for a further part of a page, or None when the bundle refuses it."""
    try:
        return await authorize_page(components, session, action, request_id(request))
    except AdminRefused:
        return None


# -- live context ----------------------------------------------------------------------


@router.get("/context")
async def context_page(request: Request,
                       days: Annotated[int, Query(ge=1, le=365)] = 30) -> Response:
    """Incidents in force (declare, end), the incidents of the last ``days`` from the
    decision log with their denied decisions, risk with its evidence and decay,
    business hours. Without ``context.read`` but with ``audit.read`` (an auditor): the
    past incidents only, from the log."""
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        components = _components(request)
        now = components.clock.now()
        live = request.state.granted == "context.read"  # else audit.read: the log's part
        ctx = _body(await context_admin.show_context(components, caller)) if live else None
        views, error = [], None
        try:
            found = await asyncio.to_thread(
                context_history.incidents, components.log,
                since=normalize_ts(now - timedelta(days=days)),
                until=normalize_ts(now + timedelta(seconds=1)))
            views = incident_views(found, now)
        except Exception as e:  # noqa: BLE001 - a read for display: say it, show the rest
            error = str(e) or type(e).__name__
        if ctx is None:
            return render(request, "context.html", ctx=None, incidents=views, days=days,
                          history_error=error, title="Live context")
        entry = ctx["risk"]["global"].get("entry")
        return render(request, "context.html", ctx=ctx, incidents=views, history_error=error,
                      days=days, risk=risk_rows(ctx["risk"], now),
                      global_part=risk_part("administrator", entry, now) if entry else None,
                      hours=business_hours(ctx["business_hours"], now), title="Live context")

    # The incidents of the past come from the decision log: auditors see them too.
    return await guarded(request, "context.read", handler, otherwise="audit.read")


@router.post("/context/incidents")
async def declare_page(
        request: Request, reason: Annotated[str, Form(min_length=1, max_length=500)],
        scope: Annotated[str, Form(max_length=2048)] = "global",
        level: Annotated[int, Form(ge=1, le=3)] = 2,
        duration_min: Annotated[int | None, Form(ge=1, le=10080)] = None,
        csrf: Annotated[str | None, Form()] = None) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        try:
            body = context_admin.IncidentRequest(
                scope=scope, level=level, reason=reason,
                duration_s=duration_min * 60 if duration_min else None)
        except ValueError as e:
            return render(request, "refused.html", 422, title="Invalid incident",
                          detail=str(e), decision_id=None)
        answer = await context_admin.declare_incident(body, request, _components(request),
                                                      caller)
        return _back_to_context(request, answer, refused_title="Not declared")

    return await guarded(request, "context.incident.set", handler, csrf=csrf, changes=True)


@router.post("/context/incidents/{incident_id}/end")
async def end_page(request: Request, incident_id: str,
                   csrf: Annotated[str | None, Form()] = None) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        answer = await context_admin.clear_incident(incident_id, request, _components(request),
                                                    caller)
        return _back_to_context(request, answer, refused_title="Not ended")

    return await guarded(request, "context.incident.clear", handler, csrf=csrf, changes=True)


def _back_to_context(request: Request, answer: Response, *, refused_title: str) -> Response:
    """After a context change: back to the Live context page, or the API's refusal shown."""
    if answer.status_code >= 400:
        return render(request, "refused.html", answer.status_code, title=refused_title,
                      detail=_body(answer).get("detail"), decision_id=None)
    return secured(RedirectResponse(f"{PREFIX}/context", status_code=303))


# -- integrity -------------------------------------------------------------------------


@router.get("/integrity")
async def integrity_page(request: Request) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        store = _components(request).log
        checkpoints = await asyncio.to_thread(getattr(store, "checkpoints", list))
        head = await asyncio.to_thread(getattr(store, "head", lambda: (0, "")))
        return render(request, "integrity.html", checkpoints=[
            c.as_dict() for c in reversed(checkpoints[-20:])], head=head, report=None,
            title="Integrity")

    return await guarded(request, "audit.read", handler)


@router.post("/integrity/verify")
async def verify_page(request: Request, csrf: Annotated[str | None, Form()] = None) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        answer = await audit_api.verify_log(request, _components(request), caller)
        return render(request, "verify_result.html", answer.status_code, report=_body(answer))

    return await guarded(request, "audit.verify", handler, csrf=csrf, changes=True)


# -- policies --------------------------------------------------------------------------


@router.get("/policies")
async def policies_page(request: Request,
                        days: Annotated[int, Query(ge=1, le=365)] = 7) -> Response:
    async def handler(request: Request, session: Session, caller: AdminCaller) -> Response:
        components = _components(request)
        bundle = _bundle(components)
        now = components.clock.now()
        hits = await asyncio.to_thread(
            rollups.policy_hits, components.log, normalize_ts(now - timedelta(days=days)),
            normalize_ts(now + timedelta(seconds=1)))
        texts = policy_texts(bundle)
        policies: list[dict[str, Any]] = [
            {"info": info, "text": texts.get(pid), "hits": hits.get(pid, 0)}
            for pid, info in sorted(bundle.policies.items())]
        return render(request, "policies.html", bundle=bundle, policies=policies, days=days,
                      never=[p for p in policies if not p["hits"]],
                      title="Policies")

    return await guarded(request, "audit.read", handler)


__all__ = ["guarded", "router"]
