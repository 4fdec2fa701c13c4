"""An evaluation that cannot be asked is still answered `false` as a decision: recorded."""

from __future__ import annotations

import pytest

from tests.authzen.test_authzen_conformance import EVALUATIONS, dataset, workload

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("semantic", ["execute_all", "deny_on_first_deny"])
async def test_a_batch_item_that_cannot_be_asked_is_a_recorded_refusal(client, components, mint,
                                                                       semantic) -> None:
    r = await client.post(EVALUATIONS, headers={"x-request-id": "batch-7"}, json={
        "subject": workload(mint()), "action": {"name": "read"},
        "options": {"evaluations_semantic": semantic, "include_reasons": True},
        "evaluations": [{"resource": {"type": "App::Dataset"}},  # no id
                        "not an object",
                        {"resource": dataset("sales-daily"), "context": {"live": {}}}]})
    assert r.status_code == 200
    answers = r.json()["evaluations"]
    assert answers[0]["decision"] is False
    for answer in answers:
        context = answer["context"]
        assert context["error"]["status"] == 400
        assert context["reason_codes"] == ["request.invalid"]
        record = components.log.get(context["decision_id"])
        assert record is not None, "the refusal was not recorded"
        assert record["decision"] == "deny" and record["reason_codes"] == ["request.invalid"]
        assert record["request_id"] == "batch-7" and record["principal"] is None
    assert components.log.get(answers[0]["context"]["decision_id"])["request"]["resource"][
        "type"] == "App::Dataset"
    assert len(answers) == (3 if semantic == "execute_all" else 1)
