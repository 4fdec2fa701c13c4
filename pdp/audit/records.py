"""What the log reads out of a record: the few columns auditors filter on.

A decision record is an opaque, JSON-able dict built by ``pdp.decision``; the
log stores it whole and pulls out only the indexed columns (who, what, on
what, the outcome, which policies decided). Everything else is kept verbatim
so the decision can be explained and replayed later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pdp.audit.chain.hashchain import CHAIN_KEYS, body, canonical, export_line, record_text

# The columns of a stored decision row, in order (both SQL stores use them).
COLUMNS = ("seq", "decision_id", "kind", "ts", "principal", "action", "resource", "decision",
           "pep", "policies", "reason_codes", "record", "prev_hash", "hash")
STORED = "record, seq, prev_hash, hash"
"""The columns a stored record is read back from, in :func:`loaded`'s order."""

_CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_TEXT_KEYS = ("kind", "principal", "action", "resource", "decision", "pep")
_PLAIN_TEXT = frozenset((str, type(None)))  # what those fields usually are (str subclasses too)


def normalize_ts(value: object) -> str:
    """An RFC 3339 UTC timestamp with microseconds, e.g. ``2026-11-23T13:00:00.123456Z``.

    One fixed width and zone, so timestamps compare correctly as text (range
    conditions on an index). Naive datetimes are taken as UTC.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None
        if _CANONICAL_TS.fullmatch(value):  # the usual case: already in this form
            return value
        value = parsed
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IndexedColumns(NamedTuple):
    """The queryable facts of one record; ``policies`` are the determining policy ids.

    A named tuple rather than a frozen dataclass: one is built per appended record,
    and a tuple is built in C (a frozen dataclass sets each field through
    ``object.__setattr__``).
    """

    decision_id: str
    ts: str
    kind: str | None = None
    principal: str | None = None
    action: str | None = None
    resource: str | None = None
    decision: str | None = None
    pep: str | None = None
    policies: tuple[str, ...] = ()
    reason_codes: tuple[str, ...] = ()


def columns_of(record: Mapping[str, Any]) -> IndexedColumns:
    """Read the indexed columns, refusing a record that would index wrongly."""
    get = record.get
    decision_id = get("decision_id")
    if not isinstance(decision_id, str) or not decision_id:
        raise ValueError("record needs a non-empty string 'decision_id'")
    if "timestamp" not in record:
        raise ValueError("record needs a 'timestamp'")
    text = (get("kind"), get("principal"), get("action"), get("resource"), get("decision"),
            get("pep"))
    if not _PLAIN_TEXT.issuperset(map(type, text)):  # one pass in C; the loop names the field
        for key, value in zip(_TEXT_KEYS, text):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"record field {key!r} must be a string or null")
    reasons = get("reasons") or []
    codes = get("reason_codes") or []
    if not isinstance(reasons, list) or not isinstance(codes, list):
        raise ValueError("record fields 'reasons' and 'reason_codes' must be lists")
    for code in codes:
        if not isinstance(code, str):
            raise ValueError("record field 'reason_codes' must hold strings")
    policies = []
    for reason in reasons:
        if isinstance(reason, dict) and isinstance(policy := reason.get("policy"), str):
            policies.append(policy)
    # tuple.__new__ directly: a named tuple's own __new__ is Python code, and this
    # runs once per appended record.
    return tuple.__new__(IndexedColumns, (decision_id, normalize_ts(record["timestamp"]),
                                          *text, tuple(policies), tuple(codes)))


_LIST_JSON: dict[tuple[str, ...], str] = {}  # policy and reason-code lists repeat: memo


def list_json(values: tuple[str, ...]) -> str:
    """Canonical JSON of a list of strings, memoized (the query columns of every record)."""
    text = _LIST_JSON.get(values)
    if text is None:
        if len(_LIST_JSON) > 4096:
            _LIST_JSON.clear()
        text = _LIST_JSON[values] = canonical(list(values))
    return text


@dataclass(slots=True)  # not frozen: built once per record on the hot path, never changed
class PreparedRecord:
    """A record checked and serialized on the caller's side, ready to be chained.

    ``body_json`` is the record's text without its chain keys
    (:func:`~pdp.audit.chain.hashchain.record_text`); the writer puts ``seq`` in front
    and hashes that (:func:`~pdp.audit.chain.hashchain.stored_text`). Fixed here, so a
    caller mutating its dict after ``append`` changes nothing that is stored.
    ``record`` is a shallow copy of the body, used only for the dict handed
    back to the caller (see :meth:`stored`).
    """

    record: dict[str, Any]
    body_json: str
    columns: IndexedColumns
    policies_json: str = "[]"
    reason_codes_json: str = "[]"

    def stored(self, seq: int, prev_hash: str, digest: str) -> dict[str, Any]:
        """The record as stored at ``seq``: the private copy with its chain keys set.

        No second copy: ``record`` was made for this record alone and is handed
        out once, with the outcome of the transaction that stored it.
        """
        record = self.record
        record["seq"], record["prev_hash"], record["hash"] = seq, prev_hash, digest
        return record


def prepare(record: Mapping[str, Any]) -> PreparedRecord:
    """Validate and serialize ``record``; any ``seq``/``prev_hash``/``hash`` given is ignored.

    Raises ``ValueError`` (a bug in the caller, not an unavailable store) for a
    record that is not JSON-able or lacks the indexed fields.
    """
    if not isinstance(record, dict) and not isinstance(record, Mapping):  # ABC check: slow
        raise ValueError("a decision record is a dict")
    columns = columns_of(record)  # reads no chain key
    copy = {**record}
    if "seq" in copy or "prev_hash" in copy or "hash" in copy:  # the store sets them
        for key in CHAIN_KEYS:
            copy.pop(key, None)
    try:
        text = record_text(copy)
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError: a ValueError
        raise ValueError(f"record is not JSON-able: {exc}") from None
    return PreparedRecord(copy, text, columns, list_json(columns.policies),
                          list_json(columns.reason_codes))


def loaded(text: str, seq: int, prev_hash: str, digest: str) -> dict[str, Any]:
    """The record a stored row holds: its JSON text, with the chain keys of its columns.

    (The text holds ``seq`` too; rows of chain format 1 all three chain keys.)
    """
    record: dict[str, Any] = json.loads(text)
    record["seq"], record["prev_hash"], record["hash"] = seq, prev_hash, digest
    return record


class StoredRow(NamedTuple):
    """One stored record as its row holds it: the hashed text and the chain columns."""

    text: str
    seq: int
    prev_hash: str
    hash: str

    def record(self) -> dict[str, Any]:
        """A fresh dict of the record, chain keys included (see :func:`loaded`)."""
        return loaded(*self)

    def export_line(self) -> tuple[dict[str, Any], str]:
        """The record, and the row as one JSON line (see
        :func:`~pdp.audit.chain.hashchain.export_line`). ``ValueError``: not a JSON object."""
        record = json.loads(self.text)
        if not isinstance(record, dict):
            raise ValueError("stored record is not a JSON object")
        line = export_line(self.text, record, self.prev_hash, self.hash)
        record["seq"], record["prev_hash"], record["hash"] = self.seq, self.prev_hash, self.hash
        return record, line


def same_record(prepared: PreparedRecord, stored: Mapping[str, Any]) -> bool:
    """Whether a stored record (chain keys included) is this record again."""
    prepared_body: dict[str, Any] = json.loads(prepared.body_json)
    return body(stored) == prepared_body


__all__ = ["COLUMNS", "STORED", "IndexedColumns", "PreparedRecord", "StoredRow", "columns_of",
           "list_json", "loaded", "normalize_ts", "prepare", "same_record"]
