"""How auditors ask the log: filters, pages and opaque cursors.

Every backend answers the same :class:`DecisionFilter` the same way;
:func:`matches` is the reference meaning (a pure function, as Cerbos's
decision filters are) and SQL backends translate it into ``WHERE`` clauses.
Pages come newest first; a cursor says where the previous page ended, so
records appended meanwhile never shift a page (keyset pagination, not OFFSET).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pdp.audit.records import IndexedColumns, normalize_ts

MAX_PAGE = 1000
"""Largest ``limit`` a query accepts."""


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """Which records to return; every field given must hold (AND), ``None`` means any.

    ``since`` is inclusive and ``until`` exclusive; either may be a datetime or
    an ISO 8601 string and is kept normalized to UTC text. ``policy`` matches
    a record whose determining policies include that id, ``reason_code`` one
    whose reason codes include that code. ``decision_id_prefix`` matches ids starting with
    it (``pdp audit show 01a235fe`` takes any unique prefix, as git does).
    """

    principal: str | None = None
    principal_prefix: str | None = None
    action: str | None = None
    resource: str | None = None
    decision: str | None = None
    policy: str | None = None
    reason_code: str | None = None
    pep: str | None = None
    kind: str | None = None
    since: datetime | str | None = None
    until: datetime | str | None = None
    decision_id_prefix: str | None = None

    def __post_init__(self) -> None:
        # Normalize once here, so a bad timestamp is the caller's 400, not a store error.
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, normalize_ts(value))


@dataclass(frozen=True, slots=True)
class Page:
    """One page of records, newest first; pass ``next_cursor`` to get the next (None: no more)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def matches(flt: DecisionFilter, col: IndexedColumns) -> bool:
    """Whether a record with these columns passes the filter."""
    equal = (("principal", col.principal), ("action", col.action),
             ("resource", col.resource), ("decision", col.decision),
             ("pep", col.pep), ("kind", col.kind))
    for name, value in equal:
        wanted = getattr(flt, name)
        if wanted is not None and value != wanted:
            return False
    if flt.principal_prefix is not None and not (
            col.principal is not None and col.principal.startswith(flt.principal_prefix)):
        return False
    if flt.decision_id_prefix is not None and not col.decision_id.startswith(
            flt.decision_id_prefix):
        return False
    if flt.policy is not None and flt.policy not in col.policies:
        return False
    if flt.reason_code is not None and flt.reason_code not in col.reason_codes:
        return False
    # since/until are text here: DecisionFilter.__post_init__ normalized them (normalize_ts).
    if flt.since is not None and col.ts < flt.since:  # type: ignore[operator]
        return False
    if flt.until is not None and col.ts >= flt.until:  # type: ignore[operator]
        return False
    return True


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    return limit


def encode_cursor(seq: int) -> str:
    """An opaque cursor for "records older than ``seq``" (base64url of a small JSON)."""
    raw = json.dumps({"v": 1, "before": seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The seq a cursor points before; ``ValueError`` for anything we did not issue."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        seq = data["before"]
        if data.get("v") != 1 or not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ValueError("invalid cursor") from None
    return seq


__all__ = ["MAX_PAGE", "DecisionFilter", "Page", "check_limit", "decode_cursor",
           "encode_cursor", "matches"]
