"""A three-agent delegation chain narrowing at every hop, where each attempt to widen or
to outlive is refused; completing the task kills every credential of the chain at once."""

from __future__ import annotations

from dataclasses import replace

import jwt
import pytest

from tests.broker.conftest import PLANNER, REPORTER, SUMMARIZER, exchange, task_details

pytestmark = pytest.mark.anyio


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def _chain(client, svid) -> tuple[str, str, str]:
    """planner -> summarizer -> reporter, each narrower than the one before."""
    first = await exchange(client, svid(PLANNER), scope="reports:read reports:summarize",
                           details=task_details("T-chain", "weekly report"))
    assert first.status_code == 200, first.text
    planner_token = first.json()["access_token"]
    second = await exchange(client, planner_token, scope="reports:summarize reports:read",
                            actor=svid(SUMMARIZER))
    assert second.status_code == 200, second.text
    summarizer_token = second.json()["access_token"]
    third = await exchange(client, summarizer_token, scope="reports:summarize",
                           actor=svid(REPORTER))
    assert third.status_code == 200, third.text
    return planner_token, summarizer_token, third.json()["access_token"]


async def test_three_agents_delegate_with_nested_act_and_narrowing_scopes(client, svid):
    planner_token, summarizer_token, reporter_token = await _chain(client, svid)
    assert _claims(planner_token)["scope"] == "reports:read reports:summarize"
    second = _claims(summarizer_token)
    assert second["sub"] == PLANNER and second["act"] == {"sub": SUMMARIZER}
    third = _claims(reporter_token)
    assert third["sub"] == PLANNER
    assert third["act"] == {"sub": REPORTER, "act": {"sub": SUMMARIZER}}
    assert third["scope"] == "reports:summarize"
    assert third["task"]["id"] == "T-chain"
    assert third["exp"] <= second["exp"] <= _claims(planner_token)["exp"]


async def test_every_attempt_to_widen_or_outlive_along_the_chain_is_refused(client, svid):
    planner_token, summarizer_token, _ = await _chain(client, svid)
    remaining = _claims(summarizer_token)["exp"] - _claims(summarizer_token)["iat"]
    attempts = [
        # the summarizer asks for more than the planner's credential carries
        (dict(subject=planner_token, scope="reports:read reports:write",
              actor=svid(SUMMARIZER)), "broker.scope_widened"),
        # the reporter asks for a scope nobody up the chain had
        (dict(subject=summarizer_token, scope="reports:write", actor=svid(REPORTER)),
         "broker.scope_widened"),
        # outliving the delegator's credential
        (dict(subject=summarizer_token, scope="reports:summarize", actor=svid(REPORTER),
              details=task_details("T-chain", lifetime_s=remaining + 1)),
         "broker.lifetime_exceeded"),
        # outliving the actor's own credential
        (dict(subject=planner_token, scope="reports:read",
              actor=svid(SUMMARIZER, ttl_s=60), details=task_details("T-chain", lifetime_s=61)),
         "broker.lifetime_exceeded"),
        # moving a credential to another task
        (dict(subject=planner_token, scope="reports:read", actor=svid(SUMMARIZER),
              details=task_details("T-other")), "broker.task_foreign"),
        # an actor proving itself with a broker credential rather than its own
        (dict(subject=planner_token, scope="reports:read", actor=summarizer_token),
         "broker.invalid_request"),
    ]
    for kwargs, code in attempts:
        subject = kwargs.pop("subject")
        r = await exchange(client, subject, **kwargs)
        assert r.status_code == 400, (code, r.text)
        assert r.json()["reason_codes"] == [code], r.text
        assert r.json()["decision_id"]


async def test_a_fourth_hop_is_refused_by_policy_and_the_broker_caps_depth(client, svid,
                                                                            components):
    _, _, reporter_token = await _chain(client, svid)
    r = await exchange(client, reporter_token, scope="reports:summarize",
                       actor=svid(SUMMARIZER))
    assert r.status_code == 403  # broker.delegation.agents-only: at most two hops
    assert r.json()["reason_codes"] == ["policy.forbid"]
    components.broker.rules = replace(components.broker.rules, max_delegation_depth=2)
    r = await exchange(client, reporter_token, scope="reports:summarize",
                       actor=svid(SUMMARIZER))
    assert r.status_code == 400 and r.json()["reason_codes"] == ["broker.delegation_depth"]


async def _authorize(client, token: str) -> dict:
    return (await client.post("/v1/authorize", json={
        "subject": {"token": token}, "action": "read",
        "resource": {"type": "App::Dataset", "id": "sales-daily"}})).json()


async def test_completing_the_task_revokes_every_credential_of_the_chain(client, svid,
                                                                          components):
    tokens = await _chain(client, svid)
    for token in tokens:
        assert "identity.revoked" not in (await _authorize(client, token))["reason_codes"]
    # Only the owner, acting as itself, may complete it.
    refused = await client.post("/v1/tasks/T-chain/complete",
                                headers={"authorization": f"Bearer {svid(SUMMARIZER)}"})
    assert refused.status_code == 403
    delegated = await client.post("/v1/tasks/T-chain/complete",
                                  headers={"authorization": f"Bearer {tokens[1]}"})
    assert delegated.status_code == 403
    done = await client.post("/v1/tasks/T-chain/complete",
                             headers={"authorization": f"Bearer {svid(PLANNER)}"})
    assert done.status_code == 200, done.text
    assert done.json()["live"] is False and len(done.json()["credentials"]) == 3
    for token in tokens:
        decision = await _authorize(client, token)
        assert decision["decision"] == "deny"
        assert decision["reason_codes"] == ["identity.revoked"]
    # Replaying a dead credential at the broker gets nothing either.
    r = await exchange(client, tokens[0], scope="reports:read", actor=svid(SUMMARIZER))
    assert r.status_code == 400 and r.json()["reason_codes"] == ["identity.revoked"]
    # No new credential for a completed task, even from a fresh identity credential.
    r = await exchange(client, svid(PLANNER), details=task_details("T-chain", "again"))
    assert r.status_code == 400 and r.json()["reason_codes"] == ["broker.task_closed"]
    # Completing again is harmless; the completion is in the log's chain.
    again = await client.post("/v1/tasks/T-chain/complete",
                              headers={"authorization": f"Bearer {svid(PLANNER)}"})
    assert again.status_code == 200
    events = [r for r in components.log.tail(200) if r.get("action") == "broker.task.complete"
              or (r.get("event") == "broker.task.complete")]
    assert events, "the completion is recorded"
    assert components.log.verify().ok


async def test_a_task_id_of_another_owner_cannot_be_taken_over(client, svid):
    r = await exchange(client, svid(PLANNER), details=task_details("T-mine"))
    assert r.status_code == 200
    r = await exchange(client, svid(REPORTER), details=task_details("T-mine"))
    assert r.status_code == 400 and r.json()["reason_codes"] == ["broker.task_foreign"]


async def test_completing_an_unknown_task_is_404(client, svid):
    r = await client.post("/v1/tasks/nope/complete",
                          headers={"authorization": f"Bearer {svid(PLANNER)}"})
    assert r.status_code == 404
