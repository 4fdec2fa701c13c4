"""What an auditor asks of the log, shared by the HTTP API and ``pdp audit``.

One implementation for both doors (as httpx's CLI opens an ordinary
``Client``): turn the filters a person types into a :class:`DecisionFilter`,
show a decision with the text of the policies that decided it (from the
bundle archive), verify the chain, and export records as JSON Lines or CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from pdp.audit import rollups
from pdp.audit.auditing.archive import ArchiveError, BundleArchive, policy_texts
from pdp.audit.chain.checkpoint import checkpoint_public_key
from pdp.audit.chain.verify import verify_log
from pdp.audit.query import DecisionFilter, matches
from pdp.audit.records import columns_of
from pdp.engine.actions import UnknownAction, cedar_uid
from pdp.engine.bundle import Bundle

FILTER_FIELDS = ("principal", "principal_prefix", "action", "resource", "decision", "policy",
                 "reason_code", "pep", "kind", "since", "until")
"""The query parameters of ``GET /v1/decisions`` and the options of ``pdp audit query``."""

_WORKLOAD_UID = re.compile(r'Pdp::Workload::"(.*)"')
_QUOTED_UID = re.compile(r'(.+)::"(.*)"')


def make_filter(values: Mapping[str, Any], bundle: Bundle | None = None) -> DecisionFilter:
    """A :class:`DecisionFilter` from what a person typed; ``ValueError`` for a bad timestamp.

    Conveniences, so the log's exact spellings need not be known: a principal
    may be given as ``Pdp::Workload::"<id>"`` or as the bare id; an action as
    its bare id (``read``, resolved with ``bundle`` to ``App::Action::"read"``
    when that is unambiguous); a resource as ``Type::id`` without quotes.
    """
    given = {k: v for k, v in values.items() if k in FILTER_FIELDS and v not in (None, "")}
    if isinstance(given.get("principal"), str):
        match = _WORKLOAD_UID.fullmatch(given["principal"])
        if match:
            given["principal"] = json.loads(f'"{match.group(1)}"')
    if isinstance(given.get("action"), str) and bundle is not None:
        try:
            given["action"] = bundle.actions.resolve(given["action"]).cedar
        except UnknownAction:
            pass  # keep it as typed: it may name an action of an older bundle
    if isinstance(given.get("resource"), str):
        given["resource"] = _resource_uid(given["resource"])
    return DecisionFilter(**given)


def filter_detail(flt: DecisionFilter) -> dict[str, Any]:
    """The filters actually set, for the ``audit.query`` admin event."""
    return {k: v for k, v in dataclasses.asdict(flt).items() if v is not None}


def _resource_uid(text: str) -> str:
    if _QUOTED_UID.fullmatch(text):
        return text
    type_, sep, id_ = text.rpartition("::")
    return cedar_uid(type_, id_) if sep and type_ and id_ else text


def decision_view(record: Mapping[str, Any], *, archive: BundleArchive | None,
                  current: Bundle | None = None) -> dict[str, Any]:
    """A logged record as an auditor reads it: the record itself (unchanged, chain keys
    included) plus ``determining_policies`` with their text as it was at the time.

    The texts come from the archived bundle version the record names
    (``policy_version.sha256``). ``bundle_archived`` says whether it was found;
    when it was not, each policy still shows its id, effect and ``@reason``
    from the record, with ``text: null``.
    """
    view = dict(record)
    reasons = [r for r in record.get("reasons") or [] if isinstance(r, Mapping)]
    version = record.get("policy_version")
    sha = version.get("sha256") if isinstance(version, Mapping) else None
    archived: dict[str, Any] = {}
    found = False
    if sha:
        try:
            if archive is not None and archive.has(sha):
                archived = {pid: p.as_dict() for pid, p in archive.policies(sha).items()}
                found = True
            elif current is not None and current.version.sha256 == sha:
                texts = policy_texts(current)
                archived = {pid: {"id": pid, "effect": info.effect, "file": info.file,
                                  "reason": info.reason, "advice": info.advice,
                                  "is_template": info.is_template, "text": texts.get(pid)}
                            for pid, info in current.policies.items()}
                found = True
        except ArchiveError:
            found = False
    policies = []
    for reason in reasons:
        pid = reason.get("policy")
        known = archived.get(pid) if isinstance(pid, str) else None
        policy = known or {"id": pid, "effect": reason.get("effect"), "file": None,
                           "reason": reason.get("message"),
                           "advice": reason.get("advice"), "text": None}
        policies.append(policy)
    view["determining_policies"] = policies
    view["bundle_archived"] = found if sha else None
    return view


def verify_store(store: Any, *, settings: Any = None) -> dict[str, Any]:
    """Check the log end to end (:func:`pdp.audit.chain.verify.verify_log`: hash chain, signed
    checkpoints, retention anchor); the report names the first broken link.

    Checkpoint signatures are checked with the key configuration names
    (``pdp.audit.chain.checkpoint.checkpoint_public_key``); without one the report
    says ``"signatures": "unsigned"``. A configured key that cannot be read is
    a ``ValueError``.

    The hourly rollups the overview charts read are derived, not chained, so they are
    checked too (:func:`pdp.audit.rollups.check_store`: every caught-up hour recounted
    from the rows in the store), under ``"rollups"``. Hours that differ fail the
    report with ``problem: "rollup mismatch"`` (when the chain itself is intact: a
    broken chain is reported first), the first few with expected and stored figures,
    and ``repair`` names the rebuild command.
    """
    report = dict(verify_log(store, public_key=_checkpoint_key(settings)).as_dict())
    rollup = rollups.check_store(store)
    report["rollups"] = rollup.as_dict() if rollup is not None else None
    if rollup is not None and not rollup.ok and report.get("ok"):
        report.update(ok=False, problem="rollup mismatch", detail=rollup.detail(),
                      repair=rollup.repair)
    return report


def _checkpoint_key(settings: Any) -> Any:
    if settings is None:
        return None
    try:
        return checkpoint_public_key(settings)
    except AttributeError:  # settings without the checkpoint keys (older configuration)
        return None


class Exported(NamedTuple):
    """One exported record: as a dict (for CSV), and its JSON line as stored."""

    record: dict[str, Any]
    line: str


def export_records(store: Any, flt: DecisionFilter) -> Iterator[Exported]:
    """Every record passing ``flt`` in log order (oldest first), as stored."""
    for row in store.iter_stored():
        try:
            record, line = row.export_line()
            cols = columns_of(record)
        except ValueError:
            continue
        if matches(flt, cols):
            yield Exported(record, line)


CSV_COLUMNS = ("seq", "decision_id", "timestamp", "kind", "principal", "action", "resource",
               "decision", "reason_codes", "policies", "explanation", "pep", "request_id",
               "instance", "event", "policy_sha256", "redacted", "hash")


def csv_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record flattened for CSV (lists joined with spaces)."""
    version = record.get("policy_version") or {}
    return {
        **{k: record.get(k) for k in CSV_COLUMNS},
        "reason_codes": " ".join(record.get("reason_codes") or []),
        "policies": " ".join(r.get("policy", "") for r in record.get("reasons") or []
                             if isinstance(r, Mapping)),
        "policy_sha256": version.get("sha256") if isinstance(version, Mapping) else None,
        "redacted": " ".join(record.get("redacted") or []),
    }


def export_lines(records: Iterable[Exported | Mapping[str, Any]], fmt: str) -> Iterator[str]:
    """The export as text chunks: JSON Lines (one stored record per line) or CSV with a header.

    Records from :func:`export_records` go out byte for byte as stored; plain
    dicts (a page of a query) as JSON with sorted keys.
    """
    if fmt == "jsonl":
        for item in records:
            yield (item.line if isinstance(item, Exported) else
                   json.dumps(item, sort_keys=True, ensure_ascii=False)) + "\n"
        return
    if fmt != "csv":
        raise ValueError("format must be jsonl or csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for item in records:
        writer.writerow(csv_row(item.record if isinstance(item, Exported) else item))
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


__all__ = ["CSV_COLUMNS", "FILTER_FIELDS", "Exported", "csv_row", "decision_view", "export_lines",
           "export_records", "filter_detail", "make_filter", "verify_store"]
