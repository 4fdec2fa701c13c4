"""``/v1/decisions``: moved to :mod:`pdp.api.audit`, with the other auditor endpoints.

Looking a decision up is an auditor's query, so it is authorized
(``Pdp::Action::"audit.read"``) and recorded like the others there. This
router stays empty so that code including it keeps working.
"""

from __future__ import annotations

from fastapi import APIRouter

from pdp.api.jsonbody import StrictJSONRoute

router = APIRouter(prefix="/v1", tags=["audit"], route_class=StrictJSONRoute)
