"""``/v1/decisions``: look a logged decision up by its id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pdp.api.deps import ComponentsDep
from pdp.api.models import Problem
from pdp.api.problems import problem

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/decisions/{decision_id}", responses={404: {"model": Problem}},
            summary="One logged decision with its explanation")
async def get_decision(decision_id: str, components: ComponentsDep) -> Any:
    """The decision record as the log keeps it: principal facts (never the raw
    credential), request, live context, policy version, reasons, errors,
    explanation, and its place in the hash chain (`seq`, `prev_hash`, `hash`)."""
    record = components.log.get(decision_id)  # type: ignore[attr-defined]
    if record is None:
        return problem(404, "Decision not found", f"no decision with id {decision_id}")
    return JSONResponse(record)
