"""A gateway refusal is a decision: it has a decision id and a record, like any deny."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

ENVOY = "/v1/gateway/envoy"

REFUSALS = {
    "no route": (f"{ENVOY}/admin/users?token=secret", {}, "request.no_route",
                 "GET", "/admin/users"),
    "unsafe path": (f"{ENVOY}/public/..%2Fdatasets/ledger", {}, "request.invalid",
                    "GET", "/public/..%2Fdatasets/ledger"),
    # The route matched: the record names its action and resource.
    "malformed x-forwarded-client-cert": (
        f"{ENVOY}/datasets/sales-daily", {"x-forwarded-client-cert": "Cert=\"unbalanced"},
        "identity.malformed", "read", None),
    "nginx without the original request": ("/v1/gateway/nginx", {}, "request.invalid",
                                           "GET", "/"),
}


@pytest.mark.parametrize("case", REFUSALS)
async def test_a_gateway_refusal_has_a_decision_id_and_a_record(client, components, case) -> None:
    url, headers, code, method, path = REFUSALS[case]
    r = await client.get(url, headers={**headers, "x-request-id": "req-42"})
    assert r.status_code == 403
    body = r.json()
    assert body["decision"] == "deny" and body["reason_codes"] == [code]
    assert body["decision_id"] and r.headers["x-pdp-decision-id"] == body["decision_id"]
    record = components.log.get(body["decision_id"])
    assert record is not None, "the refusal was not recorded"
    assert record["decision"] == "deny" and record["reason_codes"] == [code]
    assert record["request_id"] == "req-42"
    assert record["pep"] in ("envoy@127.0.0.1", "nginx@127.0.0.1")
    assert record["action"] == method
    # The original path is the resource, without its query (which may carry secrets).
    resource = ({"type": "Pdp::HttpRequest", "id": path} if path is not None
                else {"type": "App::Dataset", "id": "sales-daily"})
    assert record["request"]["resource"] == {**resource, "attrs": None, "parents": []}
    assert "secret" not in str(record)
    assert components.log.verify().ok


async def test_a_refusal_from_an_untrusted_peer_is_recorded_too(untrusted_client,
                                                                components) -> None:
    r = await untrusted_client.get(f"{ENVOY}/admin/users")
    assert r.status_code == 403 and r.json()["decision_id"]
    assert components.log.get(r.json()["decision_id"])["reason_codes"] == ["request.no_route"]
