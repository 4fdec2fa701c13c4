"""An example service protected by the PDP SDK: one line per endpoint.

    PDP_URL=http://127.0.0.1:8181 uvicorn datasets_service:app --app-dir sdk/python/examples --port 8000

    TOKEN=$(.venv/bin/pdp token --spiffe-id spiffe://example.org/services/etl)
    curl -s localhost:8000/datasets/sales-daily -H "authorization: Bearer $TOKEN"   # 200
    curl -s -X PUT localhost:8000/datasets/ledger -H "authorization: Bearer $TOKEN" # 403, and why

Configuration (environment): ``PDP_URL`` (default ``http://127.0.0.1:8181``),
``PDP_TIMEOUT`` (seconds per PDP call, default 2),
``PDP_TRUSTED_PROXIES`` (comma-separated addresses whose forwarded client
certificate is accepted), ``PDP_EMBEDDED_CONFIG`` (a ``pdp.toml``: decide
in-process instead of over HTTP).
"""  # noqa: E501 - a shell command, one line to copy

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pdp_client import AsyncPDPClient, Decision, DecisionCache
from pdp_client.fastapi import PDP


def _authorizer() -> Any:
    embedded = os.environ.get("PDP_EMBEDDED_CONFIG")
    if embedded:
        from pdp_client.embedded import AsyncEmbeddedPDP

        return AsyncEmbeddedPDP(config=embedded, cache=DecisionCache())
    return AsyncPDPClient(os.environ.get("PDP_URL", "http://127.0.0.1:8181"),
                          cache=DecisionCache(),
                          timeout=float(os.environ.get("PDP_TIMEOUT", "2.0")), retries=2)


authorizer = _authorizer()
pdp = PDP(authorizer, namespace="App",
          trusted_proxies=[p for p in os.environ.get("PDP_TRUSTED_PROXIES", "").split(",") if p])

DATASETS: dict[str, list[dict[str, Any]]] = {
    "sales-daily": [{"day": "2026-01-05", "total": 1200}],
    "customer-pii": [{"customer": "c-1", "email": "redacted"}],
    "ledger": [{"account": "4000", "balance": 10}],
}


def dataset(req: Request) -> tuple[str, str]:
    """The resource an endpoint acts on: App::Dataset named by the path."""
    return ("Dataset", req.path_params["name"])


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await authorizer.aclose()


app = FastAPI(title="datasets (example service)", lifespan=lifespan)
# The PDP's decision on this request, or a 401/403 answer before the handler runs.
MayRead = Annotated[Decision, Depends(pdp.require("read", resource=dataset))]
MayWrite = Annotated[Decision, Depends(pdp.require("write", resource=dataset))]


@app.get("/datasets/{name}")
async def read_dataset(name: str, decision: MayRead) -> dict[str, Any]:
    return {"dataset": name, "rows": DATASETS.get(name, []),
            "decision_id": decision.decision_id, "cached": decision.cached}


@app.put("/datasets/{name}")
async def write_dataset(name: str, request: Request, decision: MayWrite) -> dict[str, Any]:
    rows = await request.json()
    DATASETS[name] = rows if isinstance(rows, list) else [rows]
    return {"dataset": name, "written": len(DATASETS[name]), "decision_id": decision.decision_id}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
