"""Issuance beside verification: a token exchange against an /v1/authorize decision.

Both go through the same app in the same process (httpx over ASGI, no sockets),
with the dev issuer, the example bundle, a SQLite decision log in a temporary
directory and the same subject credential (so its verification is cached on
both sides). Rounds alternate, so the shared machine's noise falls on both.

- authorize: ``POST /v1/authorize`` — verify (cached), decide, commit the record.
- exchange: ``POST /v1/token`` — verify (cached), the broker's rules, an unrecorded
  preview for ``@max_lifetime_s``, the recorded decision, the credential's row committed
  to the durable task registry, ES256 signature.

``python -m bench broker`` writes its section of bench/RESULTS.md. Target (issue 18):
an exchange costs at most 3× an /v1/authorize decision.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import httpx

from bench.harness import Comparison, machine, record, table
from context.clock import FixedClock
from pdp.components import build_components
from pdp.config import load_settings
from pdp.server import create_app

POLICIES = Path(__file__).resolve().parents[1] / "policies"
TARGET = "≤ 3 (issue 18)"
ROUNDS, PER_ROUND, TASKS_PER_ROUND = 9, 60, 6


async def _run(state: Path) -> tuple[float, float, float, float, int]:
    from datetime import UTC, datetime

    clock = FixedClock(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))  # business hours
    settings = load_settings(None, dev=True, policies=POLICIES, state_dir=state,
                             watch_policies=False)
    parts = build_components(settings, clock=clock)
    app = create_app(parts, watch=False)
    assert parts.dev_issuer is not None
    svid = parts.dev_issuer.mint("spiffe://example.org/agents/reporter", ttl_s=3600,
                                 now=clock.at)
    authorize = {"subject": {"token": svid}, "action": "read",
                 "resource": {"type": "App::Dataset", "id": "sales-daily"}}
    issued = 0

    def form(task: int) -> dict[str, str]:
        return {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": svid,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "audience": "pdp", "scope": "datasets:read",
                "authorization_details": json.dumps([{
                    "type": "urn:pdp:task", "task_id": f"bench-{task}",
                    "purpose": "benchmark"}])}

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://pdp") as client:
            async def decide() -> None:
                r = await client.post("/v1/authorize", json=authorize)
                assert r.status_code == 200 and r.json()["decision"] == "allow", r.text

            async def exchange(i: int) -> None:
                nonlocal issued
                r = await client.post("/v1/token", data=form(i % (ROUNDS * TASKS_PER_ROUND)))
                assert r.status_code == 200, r.text
                issued += 1

            for i in range(20):  # warm both paths
                await decide()
                await exchange(i)
            ours, base, ours_cpu, base_cpu = [], [], [], []
            for r in range(ROUNDS):
                started, cpu = time.perf_counter(), time.process_time()
                for _ in range(PER_ROUND):
                    await decide()
                base.append((time.perf_counter() - started) / PER_ROUND)
                base_cpu.append((time.process_time() - cpu) / PER_ROUND)
                started, cpu = time.perf_counter(), time.process_time()
                for i in range(PER_ROUND):
                    await exchange(r * TASKS_PER_ROUND + i % TASKS_PER_ROUND)
                ours.append((time.perf_counter() - started) / PER_ROUND)
                ours_cpu.append((time.process_time() - cpu) / PER_ROUND)
    return (median(ours) * 1e6, median(base) * 1e6, median(ours_cpu) * 1e6,
            median(base_cpu) * 1e6, issued)


def run() -> list[Comparison]:
    with tempfile.TemporaryDirectory() as tmp:
        ours, base, ours_cpu, base_cpu, issued = asyncio.run(_run(Path(tmp)))
    what = (f"({issued} credentials issued, {TASKS_PER_ROUND} per task; one request at a "
            "time, so each waits for its own commits)")
    return [
        Comparison(f"POST /v1/token, wall time per exchange {what}", ours, base,
                   "POST /v1/authorize, wall time per decision (same subject, same app)",
                   TARGET),
        Comparison("POST /v1/token, CPU time of the process per exchange", ours_cpu, base_cpu,
                   "POST /v1/authorize, CPU time per decision", TARGET)]


def main() -> int:
    rows = run()
    text = table(rows)
    print(text)
    record("Credential broker: issuance beside a decision", "python -m bench broker", text)
    return 0 if all(r.ratio <= 3 for r in rows) else 1


if __name__ == "__main__":
    print(machine())
    sys.exit(main())
