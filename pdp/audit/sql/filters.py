"""A :class:`~pdp.audit.query.DecisionFilter` as SQL, for either SQL store.

The conditions mean exactly what :func:`pdp.audit.query.matches` means for
the in-memory store: ``tests/audit/test_audit_query_agreement.py`` checks
that all stores return the same pages for the same filters.
"""

from __future__ import annotations

from typing import Any

from pdp.audit.query import DecisionFilter
from pdp.audit.sql.dialect import Dialect

EQUAL = ("principal", "action", "resource", "decision", "pep", "kind")
"""Filter fields compared with the query column of the same name."""


def where_clause(dialect: Dialect, flt: DecisionFilter, *,
                 before: int | None = None) -> tuple[str, list[Any]]:
    """``" WHERE ..."`` (or ``""``) and its parameters; ``before``: only seqs below it."""
    clauses: list[str] = []
    params: list[Any] = []
    for name in EQUAL:
        if (value := getattr(flt, name)) is not None:
            clauses.append(f"{name} = ?")
            params.append(dialect.text(value))
    if flt.principal_prefix is not None:
        # A range, not LIKE (case-insensitive, needs escaping): it uses the (principal, ts) index.
        clauses.append("principal >= ?")
        params.append(dialect.text(flt.principal_prefix))
        if (upper := prefix_upper_bound(flt.principal_prefix)) is not None:
            clauses.append("principal < ?")
            params.append(dialect.text(upper))
    if flt.decision_id_prefix is not None:  # a range on the unique index, as for principals
        clauses.append("decision_id >= ?")
        params.append(dialect.text(flt.decision_id_prefix))
        if (upper := prefix_upper_bound(flt.decision_id_prefix)) is not None:
            clauses.append("decision_id < ?")
            params.append(dialect.text(upper))
    for name, column in (("policy", "policies"), ("reason_code", "reason_codes")):
        if (value := getattr(flt, name)) is not None:  # exact element, not a substring
            clauses.append(dialect.contains.format(column=column))
            params.append(dialect.text(value))
    if flt.since is not None:
        clauses.append("ts >= ?")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("ts < ?")
        params.append(flt.until)
    if before is not None:
        clauses.append("seq < ?")
        params.append(before)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return dialect.sql(where), params


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix``.

    Both stores compare text by code point (SQLite compares UTF-8 bytes, which
    orders like code points; PostgreSQL's columns are ``COLLATE "C"``), so
    "bump the last code point" is exact: ``principal >= p AND principal < bound``
    holds for precisely the strings starting with ``p``. None: no upper bound.
    """
    chars = list(prefix)
    while chars:
        point = ord(chars[-1]) + 1
        if point <= 0x10FFFF:
            chars[-1] = chr(0xE000 if 0xD800 <= point <= 0xDFFF else point)  # skip surrogates
            return "".join(chars)
        chars.pop()
    return None


__all__ = ["EQUAL", "prefix_upper_bound", "where_clause"]
