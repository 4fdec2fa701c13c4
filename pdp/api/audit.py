"""Auditor endpoints: find decisions, read why, replay them, verify the log, list identities.

Every endpoint here is an admin endpoint, authorized by the bundle's own Cedar
policies (``Pdp::Action::"audit.read"``, ``"audit.replay"``, ``"audit.verify"``,
``"audit.export"`` on ``Pdp::Admin::"audit"``; see ``policies/admin.cedar``),
so the authorizing decision is in the log. Each query is then itself recorded
as an admin event (``audit.query``, ``audit.replay``, ``audit.verify``,
``audit.export``) naming the caller, the decision that let them in and what
they asked for, *before* the answer is given: looking at the log leaves a
trace in it. If that event cannot be recorded the answer is 503.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from pdp.api.admin_auth import AdminCaller, admin_access
from pdp.api.deps import ComponentsDep, request_id
from pdp.api.jsonbody import StrictJSONRoute
from pdp.api.models import Problem
from pdp.api.problems import problem
from pdp.audit import rollups
from pdp.audit.auditing.auditor import (
    decision_view,
    export_lines,
    export_records,
    filter_detail,
    make_filter,
    verify_store,
)
from pdp.audit.auditing.inventory import (
    DEFAULT_LONG_LIVED_S,
    DEFAULT_STALE_DAYS,
    RefusalTally,
    identity_inventory,
    inventory_report,
    max_lifetimes_from_settings,
)
from pdp.audit.errors import AuditUnavailable
from pdp.audit.query import MAX_PAGE, DecisionFilter
from pdp.authoring.replay import replay_record
from pdp.components import Components

router = APIRouter(tags=["audit"], route_class=StrictJSONRoute)

_Responses = dict[int | str, dict[str, Any]]  # what FastAPI's `responses=` takes
_AUTH: _Responses = {
    401: {"model": Problem, "description": "No valid bearer credential"},
    403: {"model": Problem, "description": "The bundle's policies do not permit this caller"},
    503: {"model": Problem, "description": "The audit query could not be recorded"}}


def _ok(model: type[BaseModel], description: str) -> _Responses:
    """The 200 answer's schema. The handlers answer with ``JSONResponse`` (records are
    the log's dicts, passed through as they are), so the model documents, and FastAPI
    does not filter or re-validate, the body."""
    return {200: {"model": model, "description": description}}


_NOT_FOUND: _Responses = {404: {"model": Problem, "description": "No decision with this id"}}
_BAD: _Responses = {400: {"model": Problem, "description": "A bad timestamp or cursor"}}

_EXAMPLE_RECORD: dict[str, Any] = {
    "decision_id": "019ab0c2-7d3e-7c52-9a8e-2f1f0e4c1a10", "kind": "decision",
    "timestamp": "2026-01-05T10:00:00.123456Z", "principal": "spiffe://example.org/services/etl",
    "action": 'App::Action::"write"', "resource": 'App::Dataset::"ledger"', "decision": "deny",
    "reasons": [], "reason_codes": ["policy.no_permit"],
    "explanation": 'Denied: no policy permits Pdp::Workload::"spiffe://example.org/services/etl" '
                   'to write App::Dataset::"ledger".',
    "policy_version": {"commit": "9980f8c0...", "sha256": "1fd23539...", "dirty": False,
                       "label": "9980f8c034079+1fd235392e9d"},
    "pep": None, "redacted": [], "seq": 42, "prev_hash": "5e1c...", "hash": "a9b0..."}


class DecisionPage(BaseModel):
    """One page of logged records, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"decisions": [_EXAMPLE_RECORD], "next_cursor": "eyJ2IjoxLCJiZWZvcmUiOjQyfQ"}]})

    decisions: list[dict[str, Any]] = Field(description="Records as stored, with chain keys.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null: no more.")


class PolicyText(BaseModel):
    id: str
    effect: str | None
    file: str | None
    reason: str | None
    advice: str | None = None
    text: str | None = Field(description="The policy's Cedar text as it was when it decided.")


class DecisionDetail(BaseModel):
    """The logged record plus the text of the policies that determined it."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        **_EXAMPLE_RECORD, "decision": "allow", "reason_codes": ["policy.permit"],
        "reasons": [{"policy": "dataset.pipelines.read-write", "effect": "permit",
                     "message": "Data pipelines may read and write datasets of the analytics "
                                "domain."}],
        "determining_policies": [{
            "id": "dataset.pipelines.read-write", "effect": "permit", "file": "datasets.cedar",
            "reason": "Data pipelines may read and write datasets of the analytics domain.",
            "advice": None,
            "text": '@id("dataset.pipelines.read-write")\n@reason("...")\npermit (\n  '
                    'principal in Pdp::Group::"pipelines",\n  action in [App::Action::"read", '
                    'App::Action::"write"],\n  resource in App::DataDomain::"analytics"\n);\n'}],
        "bundle_archived": True}]})

    decision_id: str
    determining_policies: list[PolicyText]
    bundle_archived: bool | None = Field(
        description="Whether the bundle version that decided is in the archive (null: none).")


class ReplayResult(BaseModel):
    """The record re-evaluated under its recorded bundle and under the current one."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "decision_id": "019ab0c2-7d3e-7c52-9a8e-2f1f0e4c1a10", "replayable": True,
        "reproduced": True, "would_change": True,
        "recorded": {"decision": "deny", "policies": [], "reason_codes": ["policy.no_permit"]},
        "replayed": {"decision": "deny", "policies": [], "reason_codes": ["policy.no_permit"]},
        "current": {"decision": "allow", "policies": ["dataset.ledger.etl-write"],
                    "reason_codes": ["policy.permit"]},
        "differences": [], "changes": ["decision: 'deny' -> 'allow'"], "redacted": [],
        "notes": []}]})

    decision_id: str
    replayable: bool = Field(description="False for admin events and refused credentials.")
    reproduced: bool | None = Field(
        description="Same decision, determining policies and reason codes under the recorded "
                    "bundle (null: could not replay, see notes).")
    would_change: bool | None = Field(
        description="The current bundle decides differently (null: no current bundle).")
    recorded: dict[str, Any]
    replayed: dict[str, Any] | None
    current: dict[str, Any] | None
    differences: list[str]
    changes: list[str]
    redacted: list[str]
    notes: list[str]


class VerifyResult(BaseModel):
    """The hash chain checked from its first record."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"ok": False, "checked": 41, "first_broken_seq": 42,
         "first_broken_decision_id": "019ab0c2-7d3e-7c52-9a8e-2f1f0e4c1a10",
         "problem": "hash mismatch", "detail": "chain broken at seq 42: hash mismatch",
         "last_seq": 41, "head_hash": "5e1c..."}]})

    ok: bool


class IdentityInventory(BaseModel):
    """Every principal the log has seen, with stale and long-lived flags."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "generated_at": "2026-04-05T10:00:00.000000Z", "stale_days": 90, "long_lived_s": 3600,
        "total": 1, "stale": 1, "long_lived": 0, "identities": [{
            "principal": "spiffe://example.org/services/old-batch",
            "first_seen": "2025-11-02T08:00:00.000000Z",
            "last_seen": "2025-12-01T08:00:00.000000Z", "issuers": ["spiffe://example.org"],
            "credential_kinds": ["jwt-svid"], "trust_domains": ["example.org"],
            "longest_lifetime_s": 300, "requests": 1200, "denies": 3, "flags": ["stale"],
            "long_lived_because": None}]}]})

    generated_at: str
    stale_days: int
    long_lived_s: int
    total: int
    stale: int
    long_lived: int
    identities: list[dict[str, Any]]
    refused_credentials: list[dict[str, Any]] = Field(
        default_factory=list, description="Refused credentials counted by the calling `pep` "
                                          "and the workload's `source` address, never by the "
                                          "name a refused credential claims.")


async def _record(components: Components, request: Request, caller: AdminCaller, event: str,
                  detail: dict[str, Any]) -> JSONResponse | None:
    """Record the audit query; a 503 problem to answer instead when the log refuses it."""
    try:
        await components.service.record_admin_event(
            event, principal=caller.principal, authorized_by=caller.decision_id,
            detail=detail, request_id=request_id(request))
    except AuditUnavailable as e:
        return problem(503, "Audit query not recorded",
                       f"the decision log could not record this {event}: {e}")
    return None


def _all_pages(store: Any, flt: DecisionFilter) -> Any:
    """Every record matching ``flt``, page by page (newest first)."""
    cursor: str | None = None
    while True:
        page = store.query(flt, MAX_PAGE, cursor)
        yield from page.records
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _store(components: Components) -> Any:
    return components.log


@router.get("/v1/decisions",
            responses={**_ok(DecisionPage, "A page of decision records"), **_AUTH, **_BAD},
            summary="Find logged decisions")
async def list_decisions(
    request: Request,
    components: ComponentsDep,
    caller: Annotated[AdminCaller, Depends(admin_access("audit.read"))],
    principal: Annotated[str | None, Query(
        description='Exact principal id, e.g. `spiffe://example.org/services/etl` '
                    '(or `Pdp::Workload::"..."`).')] = None,
    principal_prefix: Annotated[str | None, Query(
        description="Principal id prefix, e.g. a trust domain `spiffe://example.org/`.")] = None,
    action: Annotated[str | None, Query(
        description='Action uid `App::Action::"read"`, or its bare id `read`.')] = None,
    resource: Annotated[str | None, Query(
        description='Resource uid `App::Dataset::"ledger"` or `App::Dataset::ledger`.')] = None,
    decision: Annotated[Literal["allow", "deny"] | None, Query()] = None,
    policy: Annotated[str | None, Query(description="A determining policy's `@id`.")] = None,
    reason_code: Annotated[str | None, Query(description="e.g. `policy.forbid`.")] = None,
    pep: Annotated[str | None, Query(description="The PEP that asked (`admin-api`, ...).")] = None,
    kind: Annotated[Literal["decision", "admin"] | None, Query()] = None,
    since: Annotated[str | None, Query(description="ISO 8601, inclusive.")] = None,
    until: Annotated[str | None, Query(description="ISO 8601, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> Response:
    """Records matching every filter given, **newest first**, `limit` per page. Pass the
    answer's `next_cursor` as `cursor` for the next page (stable while records are appended).

    Needs `Pdp::Action::"audit.read"`; recorded as an `audit.query` admin event."""
    values = {"principal": principal, "principal_prefix": principal_prefix, "action": action,
              "resource": resource, "decision": decision, "policy": policy,
              "reason_code": reason_code, "pep": pep, "kind": kind, "since": since,
              "until": until}
    try:
        flt = make_filter(values, components.bundles.current)
    except ValueError as e:
        return problem(400, "Invalid filter", str(e))
    refused = await _record(components, request, caller, "audit.query",
                            {"filters": filter_detail(flt), "limit": limit,
                             "cursor": cursor is not None})
    if refused is not None:
        return refused
    try:
        page = await asyncio.to_thread(_store(components).query, flt, limit, cursor)
    except ValueError as e:
        return problem(400, "Invalid cursor", str(e))
    return JSONResponse({"decisions": page.records, "next_cursor": page.next_cursor})


@router.get("/v1/decisions/{decision_id}",
            responses={**_ok(DecisionDetail, "The record, explained, with its policies"),
                       **_AUTH, **_NOT_FOUND}, summary="One logged decision, with its policies")
async def get_decision(
    decision_id: str, request: Request, components: ComponentsDep,
    caller: Annotated[AdminCaller, Depends(admin_access("audit.read"))],
) -> Response:
    """The decision record as the log keeps it: principal facts (never the raw
    credential), request (with redactions, listed in `redacted`), live context,
    policy version, reasons, errors, explanation and its place in the hash chain
    (`seq`, `prev_hash`, `hash`); plus `determining_policies` with the **text of
    each determining policy as it was when it decided**, from the bundle archive.

    Needs `Pdp::Action::"audit.read"`; recorded as an `audit.query` admin event."""
    refused = await _record(components, request, caller, "audit.query",
                            {"decision_id": decision_id})
    if refused is not None:
        return refused
    record = await asyncio.to_thread(_store(components).get, decision_id)
    if record is None:
        return problem(404, "Decision not found", f"no decision with id {decision_id}")
    view = await asyncio.to_thread(decision_view, record, archive=components.archive,
                                   current=components.bundles.current)
    return JSONResponse(view)


@router.post("/v1/decisions/{decision_id}/replay",
             responses={**_ok(ReplayResult, "The decision re-evaluated"), **_AUTH, **_NOT_FOUND},
             summary="Re-evaluate a logged decision")
async def replay_decision(
    decision_id: str, request: Request, components: ComponentsDep,
    caller: Annotated[AdminCaller, Depends(admin_access("audit.replay"))],
) -> Response:
    """Run `decide()` again on the inputs the record kept (identity facts, request,
    live snapshot, clock): under the **recorded** bundle version (from the archive)
    it must give the same decision and determining policies (`reproduced`); under the
    **current** bundle, `would_change` says whether today's policies decide otherwise.

    Refused credentials and admin events are not replayable (`replayable: false`);
    a redacted record may not reproduce (see `notes`). Needs
    `Pdp::Action::"audit.replay"`; recorded as an `audit.replay` admin event."""
    record = await asyncio.to_thread(_store(components).get, decision_id)
    if record is None:
        refused = await _record(components, request, caller, "audit.replay",
                                {"decision_id": decision_id, "found": False})
        return refused or problem(404, "Decision not found", f"no decision with id {decision_id}")
    report = await asyncio.to_thread(replay_record, record, archive=components.archive,
                                     current=components.bundles.current)
    refused = await _record(components, request, caller, "audit.replay",
                            {"decision_id": decision_id, "reproduced": report.reproduced,
                             "would_change": report.would_change})
    return refused or JSONResponse(report.as_dict())


@router.get("/v1/audit/verify", responses={**_ok(VerifyResult, "The chain, verified"), **_AUTH},
            summary="Verify the decision log's hash chain")
async def verify_log(
    request: Request, components: ComponentsDep,
    caller: Annotated[AdminCaller, Depends(admin_access("audit.verify"))],
) -> Response:
    """Check every record's hash and link from the first; `ok: false` names the first
    broken link (`first_broken_seq`, `first_broken_decision_id`, `problem`). The chain
    cannot show a cut-off tail by itself: compare `last_seq`/`head_hash` with a value
    kept elsewhere. The overview's hourly rollups are recounted from the records too
    (`rollups`); an edited hour fails with `problem: "rollup mismatch"` and `repair`
    names `pdp audit rebuild-rollups`. Needs `Pdp::Action::"audit.verify"`; recorded as
    `audit.verify`."""
    report = await asyncio.to_thread(verify_store, _store(components),
                                     settings=components.settings)
    refused = await _record(components, request, caller, "audit.verify", {
        "ok": report.get("ok"), "checked": report.get("checked"),
        "first_broken_seq": report.get("first_broken_seq"), "problem": report.get("problem")})
    return refused or JSONResponse(report)


@router.get("/v1/audit/export", responses={**_AUTH, **_BAD, 200: {
                "description": "The records, streamed: JSON Lines or CSV (`format`)",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                            "text/csv": {"schema": {"type": "string"}}}}},
            response_class=StreamingResponse,
            summary="Export the decision log (JSON Lines or CSV)")
async def export_log(
    request: Request, components: ComponentsDep,
    caller: Annotated[AdminCaller, Depends(admin_access("audit.export"))],
    format: Annotated[Literal["jsonl", "csv"], Query(
        description="`jsonl`: one stored record per line; `csv`: the main columns.")] = "jsonl",
    since: Annotated[str | None, Query(description="ISO 8601, inclusive.")] = None,
    until: Annotated[str | None, Query(description="ISO 8601, exclusive.")] = None,
    kind: Annotated[Literal["decision", "admin"] | None, Query()] = None,
) -> Response:
    """Every record in the range, oldest first, streamed. Needs
    `Pdp::Action::"audit.export"`; recorded as an `audit.export` admin event."""
    try:
        flt = DecisionFilter(since=since, until=until, kind=kind)
    except ValueError as e:
        return problem(400, "Invalid filter", str(e))
    refused = await _record(components, request, caller, "audit.export",
                            {"format": format, "filters": filter_detail(flt)})
    if refused is not None:
        return refused
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    return StreamingResponse(export_lines(export_records(_store(components), flt), format),
                             media_type=media)


@router.get("/v1/audit/overview", responses={**_AUTH, **_BAD},
            summary="Decisions over time, deny rate, top deny reasons and principals")
async def overview(
    request: Request, components: ComponentsDep,
    caller: Annotated[AdminCaller, Depends(admin_access("audit.read"))],
    since: Annotated[str, Query(description="ISO 8601, inclusive.")],
    until: Annotated[str, Query(description="ISO 8601, exclusive.")],
) -> Response:
    """The console's overview as JSON, aggregated by the store (``pdp.audit.rollups``):
    decision records per time bucket (allow/deny), the deny rate, the top deny reasons
    and denied principals, latency percentiles. Needs `Pdp::Action::"audit.read"`;
    recorded as an `audit.query` admin event."""
    try:
        flt = DecisionFilter(since=since, until=until)
    except ValueError as e:
        return problem(400, "Invalid range", str(e))
    refused = await _record(components, request, caller, "audit.query",
                            {"view": "overview", "filters": filter_detail(flt)})
    if refused is not None:
        return refused
    try:
        found = await asyncio.to_thread(rollups.overview, _store(components), since, until)
    except ValueError as e:
        return problem(400, "Invalid range", str(e))
    return JSONResponse({**dataclasses.asdict(found), "deny_rate": found.deny_rate})


@router.get("/v1/identities", responses={**_ok(IdentityInventory, "Every principal seen"), **_AUTH},
            summary="Every principal seen, with stale and long-lived flags")
async def identities(
    request: Request, components: ComponentsDep,
    caller: Annotated[AdminCaller, Depends(admin_access("audit.read"))],
    stale_days: Annotated[int, Query(ge=0, le=36500, description="Not seen for this many "
                                     "days: flagged `stale`.")] = DEFAULT_STALE_DAYS,
    long_lived_s: Annotated[int, Query(ge=1, description="A credential living longer (or "
                                       "longer than its issuer's configured maximum): flagged "
                                       "`long_lived`.")] = DEFAULT_LONG_LIVED_S,
    flagged: Annotated[bool, Query(description="Only identities with a flag.")] = False,
    principal: Annotated[str | None, Query(
        min_length=1, description="Only this principal: its decisions are read through the "
        "log's principal index, not the whole log.")] = None,
) -> Response:
    """First and last seen, issuers and credential kinds, the longest credential lifetime,
    request and deny counts, for every principal in the log (or one). Needs
    `Pdp::Action::"audit.read"`; recorded as an `audit.query` admin event."""
    detail: dict[str, Any] = {"view": "identities", "stale_days": stale_days,
                              "long_lived_s": long_lived_s}
    if principal is not None:
        detail["principal"] = principal
    refused = await _record(components, request, caller, "audit.query", detail)
    if refused is not None:
        return refused
    now = components.clock.now()
    settings = components.settings

    def compute() -> dict[str, Any]:
        refusals = RefusalTally(tuple(settings.context.behaviour.source_keys))
        store = _store(components)
        records = store.iter_all() if principal is None else _all_pages(
            store, DecisionFilter(principal=principal, kind="decision"))
        entries = identity_inventory(
            records, now=now, stale_days=stale_days,
            long_lived_s=long_lived_s, max_lifetimes=max_lifetimes_from_settings(settings),
            refusals=refusals)
        return inventory_report(entries, now=now, stale_days=stale_days,
                                long_lived_s=long_lived_s, flagged_only=flagged,
                                refusals=refusals)

    return JSONResponse(await asyncio.to_thread(compute))
