"""The console on a big log: search and overview p50, beside the same query through the
JSON API (issue 19's target: p50 ≤ 200 ms server time on 1,000,000 decisions).

``python -m bench console`` (``BENCH_CONSOLE_N`` sets the log size, default 1,000,000;
``BENCH_CONSOLE_ROUNDS`` the requests per figure, default 11).
The log is generated with bulk SQL (one recursive ``INSERT ... SELECT``), not through
``decide()``: 30 days of decisions by 500 principals, one in seven denied. Its hash chain
is not real (the bench never verifies it). The app runs in process (httpx over ASGI),
so the times are the server's own: the request's authorization decision, the
``audit.query`` event it records, the query and the rendering.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import record

N = int(os.environ.get("BENCH_CONSOLE_N", "1000000"))
ROUNDS = int(os.environ.get("BENCH_CONSOLE_ROUNDS", "11"))
REPO = Path(__file__).resolve().parents[1]
START = "2026-11-01T00:00:00"
SPAN_S = 30 * 86400

GENERATE = f"""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n),
rows AS (SELECT i,
    strftime('%Y-%m-%dT%H:%M:%S', '{START}', '+' || (i * {SPAN_S} / :n) || ' seconds')
        || '.' || printf('%06d', i % 1000000) || 'Z' AS ts,
    'spiffe://example.org/svc/' || (i * 7919 % 500) AS principal,
    CASE WHEN i % 7 = 0 THEN 'deny' ELSE 'allow' END AS decision,
    CASE WHEN i % 3 = 0 THEN 'App::Action::"write"' ELSE 'App::Action::"read"' END AS action,
    'App::Dataset::"ds-' || (i % 50) || '"' AS resource
  FROM n)
INSERT INTO decisions (seq, decision_id, kind, ts, principal, action, resource, decision, pep,
                       policies, reason_codes, record, prev_hash, hash)
SELECT i, printf('bench-%010d', i), 'decision', ts, principal, action, resource, decision,
       'gateway',
       CASE decision WHEN 'allow' THEN '["dataset.pipelines.read-write"]' ELSE '[]' END,
       CASE decision WHEN 'allow' THEN '["policy.permit"]'
            ELSE (CASE WHEN i % 2 = 0 THEN '["policy.no_permit"]' ELSE '["policy.forbid"]' END)
       END,
       json_object('seq', i, 'decision_id', printf('bench-%010d', i), 'kind', 'decision',
                   'timestamp', ts, 'principal', principal, 'action', action,
                   'resource', resource, 'decision', decision, 'pep', 'gateway',
                   'reasons', json('[]'), 'reason_codes', json('[]'),
                   'explanation', 'generated', 'latency_us', 80 + i % 400),
       printf('%064d', i - 1), printf('%064d', i)
FROM rows
"""

ADMIN_EVENTS = f"""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :m),
rows AS (SELECT i,
    strftime('%Y-%m-%dT%H:%M:%S', '{START}', '+' || (i * {SPAN_S} / :m) || ' seconds')
        || '.000000Z' AS ts,
    CASE WHEN i % 720 = 0 THEN 'context.incident.set'
         WHEN i % 720 = 60 THEN 'context.incident.clear'
         WHEN i % 200 = 7 THEN 'context.risk.auto'
         ELSE 'audit.query' END AS event
  FROM n),
events AS (SELECT i, ts, event,
    CASE event
      WHEN 'context.incident.set' THEN json_object('incident', json_object(
        'id', 'inc-' || (i / 720), 'scope', 'global', 'level', 3, 'level_name', 'critical',
        'reason', 'generated', 'set_at', ts, 'set_by', 'spiffe://example.org/ops/sre-console',
        'ends_at', NULL))
      WHEN 'context.incident.clear' THEN json_object('incidents', json_array(json_object(
        'id', 'inc-' || (i / 720), 'scope', 'global', 'level', 3, 'level_name', 'critical',
        'reason', 'generated', 'set_at', ts, 'set_by', 'spiffe://example.org/ops/sre-console')))
      WHEN 'context.risk.auto' THEN json_object(
        'change', 'raised', 'principal', 'spiffe://example.org/svc/' || (i % 5), 'level', 2,
        'previous_level', 0, 'summary', 'risk raised to high: 20 denies in 60 s',
        'signals', json_array('deny_burst'), 'decisions', json_array('bench-0000000007'),
        'decay_s', 300, 'decays', json_array())
      ELSE json_object('filters', json_object()) END AS detail
  FROM rows)
INSERT INTO decisions (seq, decision_id, kind, ts, principal, action, resource, decision, pep,
                       policies, reason_codes, record, prev_hash, hash)
SELECT :n + i, printf('bench-admin-%08d', i), 'admin', ts,
       'spiffe://example.org/ops/sre-console', NULL, NULL, NULL, NULL, '[]', '[]',
       json_object('seq', :n + i, 'decision_id', printf('bench-admin-%08d', i), 'kind', 'admin',
                   'timestamp', ts, 'principal', 'spiffe://example.org/ops/sre-console',
                   'event', event, 'detail', json(detail), 'decision', NULL, 'reasons',
                   json('[]'), 'reason_codes', json('[]'), 'explanation', event),
       printf('%064d', :n + i - 1), printf('%064d', :n + i)
FROM events
"""
ADMIN_N = max(1, N // 50)
"""Administrative events beside the decisions: mostly ``audit.query`` (an auditor's reads),
an incident declared and ended every 720, a behaviour raise every 200."""


def generate(path: Path) -> tuple[float, float]:
    """A log of N decisions at ``path`` (schema from the store itself); seconds taken to
    generate it, and to build its hourly rollup from scratch (the one-time cost an
    existing log pays on the first overview after an upgrade)."""
    from pdp.audit import SqliteDecisionLog, hourly_rollup
    from pdp.audit.sqlite.principal_index import catch_up

    SqliteDecisionLog(path).close()  # the schema, migrated
    began = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    conn.execute(GENERATE, {"n": N})
    conn.execute(ADMIN_EVENTS, {"n": N, "m": ADMIN_N})
    conn.execute("COMMIT")
    catch_up(conn)  # the principal index, as the store keeps it
    conn.execute("ANALYZE")
    took = time.perf_counter() - began
    began = time.perf_counter()
    hourly_rollup.catch_up(conn, "sqlite")
    built = time.perf_counter() - began
    conn.close()
    return took, built


async def measure(path: Path) -> list[tuple[str, float, float]]:
    import httpx

    from pdp.components import build_components
    from pdp.config import load_settings
    from pdp.server import create_app

    state = path.parent / "state"
    bundle = path.parent / "policies"
    shutil.copytree(REPO / "policies", bundle)
    settings = load_settings(None, dev=True, policies=bundle, state_dir=state,
                             audit={"backend": "sqlite", "sqlite_path": path})
    components = build_components(settings)
    app = create_app(components, watch=False)
    rows: list[tuple[str, float, float]] = []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pdp") as client:
        assert components.dev_issuer is not None
        auditor = "spiffe://example.org/audit/auditor"
        signed = await client.post("/console/signin/dev", data={"principal": auditor},
                                   headers={"origin": "http://pdp"})
        assert signed.status_code == 303, signed.text

        def bearer() -> dict[str, str]:
            return {"authorization": f"Bearer {components.dev_issuer.mint(auditor)}"}  # type: ignore[union-attr]

        day = {"since": "2026-11-20T00:00:00Z", "until": "2026-11-21T00:00:00Z"}
        month = {"since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}
        cases: list[tuple[str, str, dict[str, Any], str, dict[str, Any]]] = [
            ("search: newest 50, no filter", "/console/decisions", {"limit": 50},
             "/v1/decisions", {"limit": 50}),
            ("search: one principal's denies in a day",
             "/console/decisions", {"principal": "spiffe://example.org/svc/42",
                                    "decision": "deny", **day, "limit": 50},
             "/v1/decisions", {"principal": "spiffe://example.org/svc/42",
                               "decision": "deny", **day, "limit": 50}),
            ("search: denies by reason code in a day", "/console/decisions",
             {"decision": "deny", "reason_code": "policy.forbid", **day, "limit": 50},
             "/v1/decisions", {"decision": "deny", "reason_code": "policy.forbid", **day,
                               "limit": 50}),
            ("overview: one day (hourly buckets)", "/console/overview", day,
             "/v1/audit/overview", day),
            ("overview: 30 days, the whole log (daily buckets)", "/console/overview", month,
             "/v1/audit/overview", month),
            # The incident history reads admin events; the API column lists them all.
            ("live context: incidents of 30 days (auditor)", "/console/context", {"days": 30},
             "/v1/decisions", {"kind": "admin", "limit": 50}),
            ("a principal: decisions, inventory, 90 days of risk history",
             "/console/identities/spiffe://example.org/svc/3", {},
             "/v1/identities", {"principal": "spiffe://example.org/svc/3"}),
        ]
        for name, page, params, api, api_params in cases:
            console_ms, api_ms = [], []
            for _ in range(ROUNDS):
                began = time.perf_counter()
                answer = await client.get(page, params=params)
                console_ms.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, (page, answer.status_code, answer.text[:300])
                headers = bearer()
                began = time.perf_counter()
                answer = await client.get(api, params=api_params, headers=headers)
                api_ms.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, (api, answer.text[:300])
            rows.append((name, statistics.median(console_ms), statistics.median(api_ms)))
            print(f"{name}: console {rows[-1][1]:.1f} ms, JSON API {rows[-1][2]:.1f} ms",
                  flush=True)
    components.close()
    return rows


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pdp-bench-console-"))
    try:
        path = work / "decisions.db"
        took, built = generate(path)
        print(f"generated {N:,} decisions in {took:.1f} s, hourly rollup built in "
              f"{built:.1f} s", flush=True)
        rows = asyncio.run(measure(path))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    body = (f"A log of {N:,} generated decisions and {ADMIN_N:,} admin events (SQLite, bulk SQL in {took:.0f} s; its "
            f"hourly overview rollup built from scratch in {built:.1f} s, once); "
            f"p50 of {ROUNDS} requests each, in process (httpx over ASGI), so server time "
            "including each request's own authorization decision and `audit.query` "
            "record. Target: p50 ≤ 200 ms (issue 19).\n\n"
            "| query | console page p50 (ms) | same query, JSON API p50 (ms) |\n"
            "|---|---:|---:|\n" + "\n".join(
                f"| {name} | {c:.1f} | {a:.1f} |" for name, c, a in rows))
    print(body)
    record("Console on a big log (issue 19)", "python -m bench console", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
