"""Check the hourly rollups against the decision rows they were counted from.

The overview's charts read whole hours from the derived tables of
:mod:`pdp.audit.hourly_rollup`, which the hash chain does not cover: editing a
row there (lowering an hour's deny count, dropping a denied principal) would
change what an auditor sees while the chain still verifies. :func:`check`
closes that gap. For the range the rollup says it holds (``from_seq`` through
``through_seq`` of its watermark), it recounts every figure from ``decisions``
with the same ``GROUP BY`` the catch-up uses, and lets the store compare both
sides with ``EXCEPT`` — only the rows that differ come back to Python, never
the records. Records past the watermark are not yet counted, so they are not
compared (a catch-up folds them in later; the overview reads them from rows).

A rollup that is missing, or stale (retention removed records below its
watermark: the overview does not read it, the next catch-up rebuilds it), is
reported as *not compared*, not as tampered: nothing an auditor sees comes from it.

The repair is :func:`pdp.audit.rollups.rebuild_store` (``pdp audit rebuild-rollups``):
it recounts the tables from the rows, which ``pdp audit verify`` has just checked
against the chain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pdp.audit.hourly_rollup import DATA_TABLES, HOUR, Dialect, log_bounds, usable
from pdp.audit.hourly_rollup import State as RollupState

SHOWN = 5
"""How many differing hours a report lists (with expected and stored figures)."""
DIFF_CAP = 10_000
"""At most this many differing rows are read per table: enough to name the hours of any
plausible edit; a rollup wrong everywhere is reported as "at least" that many hours."""
REPAIR = "pdp audit rebuild-rollups"
"""The command that rebuilds the rollups from the (verified) decision rows."""


@dataclass(frozen=True, slots=True)
class HourDiff:
    """One hour whose stored figures differ from the rows: ``expected`` (recounted from
    ``decisions``) and ``stored`` (in the rollup), each ``{"table": {key: n}}`` holding
    only the figures that differ (``key`` is ``allow``/``deny``, a reason code or a
    principal; a figure absent on one side counts 0 there)."""

    hour: str
    expected: dict[str, dict[str, int]]
    stored: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class RollupReport:
    """What :func:`check` found. ``compared`` is False when there was nothing to compare
    (no rollup, or a stale one the overview does not read; ``note`` says which)."""

    ok: bool
    compared: bool
    from_seq: int | None = None
    through_seq: int | None = None
    hours: int = 0
    """Hours the rollup holds (``overview_hourly`` rows)."""
    differing_hours: int = 0
    capped: bool = False
    """True when more rows differed than were read: ``differing_hours`` is a lower bound."""
    first: list[HourDiff] = field(default_factory=list)
    note: str = ""
    repair: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def detail(self) -> str:
        """One sentence for a failure: where, what and how to repair."""
        shown = "; ".join(
            f"{d.hour}: expected {_figures(d.expected)}, stored {_figures(d.stored)}"
            for d in self.first)
        more = "at least " if self.capped else ""
        return (f"the hourly rollups differ from the decision log in {more}"
                f"{self.differing_hours} hour(s) of seq {self.from_seq}..{self.through_seq} "
                f"(the overview charts would show the stored figures): {shown}. "
                f"Repair: `{REPAIR}` rebuilds them from the verified log")


def _figures(side: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{table} {key}={n}" for table, keys in sorted(side.items())
                     for key, n in sorted(keys.items())) or "nothing"


def _expected_queries(dialect: Dialect) -> dict[str, tuple[str, str]]:
    """Per table: the recount from ``decisions`` (same ``GROUP BY`` as the catch-up's
    fold) and the stored rows, as ``(hour, key, n)`` triples both. PostgreSQL's ``ts``
    is ``COLLATE "C"`` and the rollup's text is not: set operations need one collation."""
    c = ' COLLATE "C"' if dialect == "postgres" else ""
    rng = "seq >= {p} AND seq <= {p} AND kind = 'decision'"
    each = ("json_each(decisions.reason_codes) AS j" if dialect == "sqlite"
            else "unnest(reason_codes) AS j(value)")
    hour = f"substr(ts, 1, {HOUR}){c}"
    return {
        # allow and deny as two keys of one hour, so one EXCEPT serves every table
        "overview_hourly": (
            f"SELECT {hour}, 'allow', sum(CASE WHEN decision = 'allow' THEN 1 ELSE 0 END) "
            f"FROM decisions WHERE {rng} GROUP BY 1 "
            f"UNION ALL SELECT {hour}, 'deny', sum(CASE WHEN decision = 'allow' THEN 0 ELSE 1 END) "
            f"FROM decisions WHERE {rng} GROUP BY 1",
            f"SELECT hour{c}, 'allow', allow FROM overview_hourly "
            f"UNION ALL SELECT hour{c}, 'deny', deny FROM overview_hourly"),
        "overview_hourly_reasons": (
            f"SELECT {hour}, j.value{c}, count(*) FROM decisions, {each} "
            f"WHERE {rng} AND decision = 'deny' GROUP BY 1, 2",
            f"SELECT hour{c}, code{c}, n FROM overview_hourly_reasons"),
        "overview_hourly_denied": (
            f"SELECT {hour}, principal{c}, count(*) FROM decisions "
            f"WHERE {rng} AND decision = 'deny' AND principal IS NOT NULL GROUP BY 1, 2",
            f"SELECT hour{c}, principal{c}, n FROM overview_hourly_denied"),
    }


def _raw_state(conn: Any, dialect: Dialect) -> RollupState | None:
    """The watermark row as stored (None without the tables or the row). Unlike
    :func:`pdp.audit.hourly_rollup.read_state` it does not require the hourly sum to
    equal ``counted``: a mismatch there is one of the things to report."""
    names = (*DATA_TABLES, "overview_rollup_state")
    if dialect == "sqlite":
        have = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    else:
        have = {n for n in names if conn.execute(
            "SELECT to_regclass(%s)", (n,)).fetchone()[0] is not None}
    if not set(names) <= have:
        return None
    row = conn.execute("SELECT from_seq, through_seq, counted FROM overview_rollup_state "
                       "WHERE name = 'overview'").fetchone()
    return None if row is None else RollupState(int(row[0]), int(row[1]), int(row[2]))


def check(conn: Any, dialect: Dialect) -> RollupReport:
    """Compare every figure of the rollup with a recount from the rows (see the module
    docstring). Run it inside one read transaction, so watermark and rows agree."""
    state = _raw_state(conn, dialect)
    if state is None:
        return RollupReport(ok=True, compared=False,
                            note="no hourly rollup yet: the overview reads the rows")
    first, head = log_bounds(conn)
    if not usable(state, first, head):
        return RollupReport(ok=True, compared=False, from_seq=state.from_seq,
                            through_seq=state.through_seq,
                            note="the hourly rollup is stale (records below its watermark "
                                 "were removed): the overview does not read it, and the "
                                 "next catch-up rebuilds it")
    hours = int(conn.execute("SELECT count(*) FROM overview_hourly").fetchone()[0])
    p = "?" if dialect == "sqlite" else "%s"
    params = (state.from_seq, state.through_seq)
    diffs: dict[str, dict[str, dict[str, dict[str, int]]]] = {}  # hour -> side -> table -> key
    capped = False
    for table, (expected, stored) in _expected_queries(dialect).items():
        rng_params = params * (expected.count("{p}") // 2)  # each seq range takes both
        # The recount is materialized once and read by both directions of the symmetric
        # difference (recounting twice doubled the cost); each row is tagged with its side.
        sql = (f"WITH ex (hour, k, n) AS MATERIALIZED ({expected.format(p=p)}), "
               f"st (hour, k, n) AS ({stored}) "
               "SELECT 'expected', d.* FROM (SELECT * FROM ex EXCEPT SELECT * FROM st) AS d "
               "UNION ALL "
               "SELECT 'stored', d.* FROM (SELECT * FROM st EXCEPT SELECT * FROM ex) AS d "
               f"LIMIT {DIFF_CAP + 1}")
        rows = conn.execute(sql, rng_params).fetchall()
        if len(rows) > DIFF_CAP:
            capped, rows = True, rows[:DIFF_CAP]
        for side, hour, key, n in rows:
            diffs.setdefault(str(hour), {"expected": {}, "stored": {}})[str(side)] \
                .setdefault(table, {})[str(key)] = int(n)
    if state.through_seq and not diffs:
        held = int(conn.execute(
            "SELECT coalesce(sum(allow + deny), 0) FROM overview_hourly").fetchone()[0])
        if held != state.counted:  # the rows agree but the watermark's count was edited
            return RollupReport(
                ok=True, compared=True, from_seq=state.from_seq, through_seq=state.through_seq,
                hours=hours, note=f"the watermark says {state.counted} records, the rollup "
                                  f"holds {held}: the overview does not read it until the "
                                  "next catch-up rebuilds it")
    shown = [HourDiff(hour, _fill(d["expected"], d["stored"]), _fill(d["stored"], d["expected"]))
             for hour, d in sorted(diffs.items())[:SHOWN]]
    return RollupReport(ok=not diffs, compared=True, from_seq=state.from_seq,
                        through_seq=state.through_seq, hours=hours,
                        differing_hours=len(diffs), capped=capped, first=shown,
                        repair=REPAIR if diffs else None)


def _fill(side: dict[str, dict[str, int]],
          other: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``side`` with a 0 for every figure only ``other`` holds (a row missing on one side:
    e.g. a denied principal deleted from the rollup is expected n, stored 0)."""
    out = {table: dict(keys) for table, keys in side.items()}
    for table, keys in other.items():
        for key in keys:
            out.setdefault(table, {}).setdefault(key, 0)
    return out


__all__ = ["DIFF_CAP", "REPAIR", "SHOWN", "HourDiff", "RollupReport", "check"]
