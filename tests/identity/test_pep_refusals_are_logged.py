"""A caller refused by the PEP allowlist (401/403) is a recorded decision, recorded once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.identity.test_pep_allowlist import guarded, pep, td  # noqa: F401 - fixtures
from tests.identity.workloads import TrustDomain, app_client, authorize_body

pytestmark = pytest.mark.anyio


def _records(components: Any) -> list[dict[str, Any]]:
    return list(components.log.iter_all())


@pytest.mark.parametrize("path", ["/v1/authorize", "/access/v1/evaluation"])
@pytest.mark.parametrize("caller, status, code", [
    (None, 401, "identity.missing"),
    ("/services/etl", 403, "identity.pep_not_allowed"),
])
async def test_a_refused_caller_gets_a_decision_id_and_one_record(
        guarded: Any, td: TrustDomain, path: str, caller: str | None, status: int,  # noqa: F811
        code: str) -> None:
    before = len(_records(guarded))
    async with app_client(guarded) as client:
        r = await client.post(path, json=authorize_body(td.jwt_svid("/services/etl")),
                              headers={**(pep(td, caller) if caller else {}),
                                       "x-request-id": "pep-1"})
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["reason_codes"] == [code] and body["decision_id"]
    added = _records(guarded)[before:]
    assert [a["decision_id"] for a in added] == [body["decision_id"]]  # once, not per path
    record = added[0]
    assert record["decision"] == "deny" and record["reason_codes"] == [code]
    assert record["request_id"] == "pep-1" and record["principal"] is None
    assert record["request"]["resource"]["id"] == path
    assert record["pep"] == ("spiffe://example.org/services/etl" if caller else None)
