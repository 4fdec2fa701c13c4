"""The shared API fixtures (``sdk/fixtures/api``) through the Python SDK, against a real
``pdp serve --dev``. The TypeScript SDK replays the same files (``test/fixtures.test.js``),
so a change in the API breaks the SDKs' tests, not their users."""

from __future__ import annotations

import json

import httpx
import pytest
from pdp_client import Item, PDPClient

from tests.conftest import REPO

FIXTURES = sorted((REPO / "sdk" / "fixtures" / "api").glob("*.json"))


def token_for(subject: dict, mint) -> str:
    return subject["token"] if "token" in subject else mint(subject["spiffe_id"])


def check_decision(decision, expect: dict) -> None:
    assert decision.decision == expect["decision"]
    if "reason_codes" in expect:
        assert list(decision.reason_codes) == expect["reason_codes"]
    if "policies" in expect:
        assert [r.policy for r in decision.reasons] == expect["policies"]
    if "explanation_starts_with" in expect:
        assert decision.explanation.startswith(expect["explanation_starts_with"])
    if "principal" in expect:
        assert decision.principal == expect["principal"]
    if expect.get("has_valid_until"):
        assert decision.valid_until is not None and decision.valid_until > decision.timestamp
    if "made_by_sdk" in expect:
        assert decision.made_by_sdk == expect["made_by_sdk"]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_through_the_python_sdk(path, pdp_server, mint) -> None:
    fixture = json.loads(path.read_text())
    token = token_for(fixture["subject"], mint)
    request, expect = fixture["request"], fixture["expect"]
    with PDPClient(pdp_server.url) as pdp:
        if fixture["endpoint"] == "/v1/authorize":
            check_decision(pdp.authorize(token=token, **request), expect)
        elif fixture["endpoint"] == "/v1/authorize/batch":
            items = [Item(i["action"], i["resource"], i.get("context")) for i in request["items"]]
            decisions = pdp.authorize_batch(token=token, items=items)
            assert len(decisions) == len(expect["results"])
            for decision, expected in zip(decisions, expect["results"]):
                check_decision(decision, expected)
        else:  # AuthZEN: the Python SDK has no AuthZEN client; any HTTP client is one
            body = json.loads(json.dumps(request))
            body["subject"].setdefault("properties", {})["token"] = token
            answer = httpx.post(pdp_server.url + fixture["endpoint"], json=body, timeout=10)
            assert answer.status_code == 200
            got = answer.json()
            if "decision" in expect:
                assert got["decision"] is expect["decision"]
            if "evaluations" in expect:
                assert [e["decision"] for e in got["evaluations"]] == [
                    e["decision"] for e in expect["evaluations"]]
