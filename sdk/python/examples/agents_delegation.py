"""Two agents, one task: the planner delegates a narrower sub-task to the summarizer.

Both call a service protected by the FastAPI dependency (``PDP(...).require``), each
with a task credential from the PDP's broker, never with a standing one:

1. the planner exchanges its own JWT-SVID for a task credential (``datasets:read``);
2. it hands the summarizer a *narrower* credential: an exchange of its task
   credential with the summarizer's own SVID as ``actor_token`` — the result names
   the planner as subject and the summarizer as actor (``act``);
3. both read ``sales-daily`` through the service; the PDP checks both hops;
4. the planner leaves its ``async with``: the task is completed, and the
   summarizer's credential is refused from the next request on.

Run it against ``make run`` (``pdp serve --dev``) inside business hours (UTC; the example
bundle's agents work only then)::

    PLANNER=$(.venv/bin/pdp token --spiffe-id spiffe://example.org/agents/planner)
    SUMMARIZER=$(.venv/bin/pdp token --spiffe-id spiffe://example.org/agents/summarizer)
    .venv/bin/python sdk/python/examples/agents_delegation.py "$PLANNER" "$SUMMARIZER"
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from pdp_client import AsyncPDPClient, AsyncTaskCredentials, Decision
from pdp_client.fastapi import PDP


def make_service(authorizer: AsyncPDPClient) -> FastAPI:
    """A datasets service: every read is decided by the PDP for the caller's credential."""
    pdp = PDP(authorizer, namespace="App")
    app = FastAPI(title="datasets (agents example)")

    def dataset(req: Request) -> tuple[str, str]:
        return ("Dataset", req.path_params["name"])

    may_read = Depends(pdp.require("read", resource=dataset))

    @app.get("/datasets/{name}")
    async def read(name: str, decision: Decision = may_read) -> dict[str, Any]:
        return {"dataset": name, "rows": [{"day": "2026-01-05", "total": 1200}],
                "principal": decision.principal, "decision_id": decision.decision_id}

    return app


async def run(pdp_http: httpx.AsyncClient, service: httpx.AsyncClient, *,
              planner_svid: str, summarizer_svid: str) -> dict[str, Any]:
    """The whole story; returns what each step saw (the test checks it)."""
    seen: dict[str, Any] = {}
    async with AsyncTaskCredentials(
            pdp_http, identity=planner_svid, audience="pdp", scope=["datasets:read"],
            purpose="summarize yesterday's sales") as planner:
        planner_token = await planner.token()
        r = await service.get("/datasets/sales-daily",
                              headers={"authorization": f"Bearer {planner_token}"})
        seen["planner"] = r.status_code
        # The sub-task: the summarizer's own credential as actor, a narrower scope.
        summarizer = AsyncTaskCredentials(
            pdp_http, identity=planner_token, actor=summarizer_svid, audience="pdp",
            scope=["datasets:read"], lifetime_s=300)
        async with summarizer:
            delegated = await summarizer.token()
            r = await service.get("/datasets/sales-daily",
                                  headers={"authorization": f"Bearer {delegated}"})
            seen["summarizer"] = r.status_code
        seen["task_id"] = planner.task_id
    # The task is completed: the summarizer's credential is dead.
    r = await service.get("/datasets/sales-daily",
                          headers={"authorization": f"Bearer {delegated}"})
    seen["after_completion"] = r.status_code
    return seen


async def main(planner_svid: str, summarizer_svid: str) -> None:
    url = os.environ.get("PDP_URL", "http://127.0.0.1:8181")
    authorizer = AsyncPDPClient(url)  # no cache: a revoked credential must fail at once
    service = httpx.AsyncClient(transport=httpx.ASGITransport(app=make_service(authorizer)),
                                base_url="http://datasets")
    async with httpx.AsyncClient(base_url=url) as pdp_http, service:
        print(await run(pdp_http, service, planner_svid=planner_svid,
                        summarizer_svid=summarizer_svid))
    await authorizer.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
