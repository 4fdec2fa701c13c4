"""How the SQLite log chooses a page of records: from an index first, then the records.

In one step SQLite would sort every matching row *with its record* to find
the newest: 20x slower for a principal over 30 days of a 1,000,000-record log
(``bench/audit_log.py``). So :func:`page_sql` chooses the page's seqs from an
index alone (each index carries seq, the rowid) and then reads only those
records; a principal filter reads the principal index up to its watermark
and the records after it (see :mod:`pdp.audit.sqlite.principal_index`).
"""

from __future__ import annotations

from typing import Any

from pdp.audit.query import DecisionFilter
from pdp.audit.records import STORED
from pdp.audit.sql import filters
from pdp.audit.sqlite import principal_index
from pdp.audit.sqlite.dialect import SQLITE


def where_clause(flt: DecisionFilter, *, before: int | None = None) -> tuple[str, list[Any]]:
    """``flt`` as SQLite ``WHERE`` (see :func:`pdp.audit.sql.filters.where_clause`)."""
    return filters.where_clause(SQLITE, flt, before=before)


def page_sql(flt: DecisionFilter, limit: int, *,
             before: int | None = None) -> tuple[str, list[Any]]:
    """The newest ``limit`` records passing ``flt`` (below seq ``before``), newest first."""
    where, params = where_clause(flt, before=before)
    candidates = f"SELECT seq FROM decisions{where}"
    if flt.principal is not None or flt.principal_prefix is not None:
        candidates, params = _principal_candidates(flt, before, where, params)
    sql = (f"SELECT {STORED} FROM decisions WHERE seq IN ({candidates} "
           "ORDER BY seq DESC LIMIT ?) ORDER BY seq DESC")
    return sql, [*params, limit]


def _principal_candidates(flt: DecisionFilter, before: int | None, where: str,
                          params: list[Any]) -> tuple[str, list[Any]]:
    """The seqs passing a principal filter: the principal index up to its watermark,
    and the records after it, filtered row by row.

    Index entries are checked against their records only when the filter asks
    for more than an entry holds.
    """
    watermark = principal_index.WATERMARK
    indexed = DecisionFilter(**{name: getattr(flt, name)
                                for name in principal_index.INDEXED_FIELDS})
    index_where, index_params = where_clause(indexed, before=before)
    from_index = f"SELECT seq FROM principal_index{index_where} AND seq <= {watermark}"
    if indexed != flt:  # action, decision, policy, ...: look at the record too
        from_index = f"SELECT seq FROM decisions{where} AND seq IN ({from_index})"
        index_params = [*params, *index_params]
    tail = f"SELECT seq FROM decisions{where} AND seq > {watermark}"
    return f"{from_index} UNION ALL {tail}", [*index_params, *params]


__all__ = ["page_sql", "where_clause"]
