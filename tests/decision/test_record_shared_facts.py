"""``decide()`` computes ``context.credential`` once and the decision carries it to its
record (``Decision.credential_context``); the principal entity Cedar evaluates and the
record's identity parts come from the service's memo (``IdentityParts``). Proven equal,
byte for byte, to the decision and record computed afresh (no carried facts, no memo) on
generated requests over the example bundle, delegated and refused ones included, with
one memo across identities that share a principal id but not their groups."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from context.model import LiveSnapshot
from pdp.decision.decide import credential_facts, decide, principal_entity
from pdp.decision.identity_parts import IdentityParts
from pdp.decision.model import AuthorizeInput, Decision, ResourceRef
from pdp.decision.record import decision_record
from pdp.identity.model import BearerToken, VerifiedIdentity
from tests.conftest import MONDAY_10
from tests.decision.strategies import (
    actions,
    contexts,
    contexts_for,
    identity_of,
    lives,
    principals,
    resources,
)

ETL = "spiffe://example.org/services/etl"


def decided(bundle: Any, who: VerifiedIdentity, action: str, resource: Any,
            context: dict[str, Any], live: Any, parts: IdentityParts | None = None) -> Decision:
    return decide(bundle, identity=who, action=action, resource=resource, context=context,
                  live=live, now=live.now, decision_id=lambda: "d", parts=parts)


def record_bytes(decision: Decision, request: AuthorizeInput, bundle: Any,
                 parts: IdentityParts | None) -> bytes:
    return orjson.dumps(decision_record(decision, request, latency_us=3, bundle=bundle,
                                        parts=parts, instance="host:1"))


@settings(max_examples=120, deadline=None)
@given(requests=st.lists(st.tuples(principals, actions, resources, contexts, lives,
                                   st.integers(0, 7200), st.booleans(), st.booleans()),
                         min_size=1, max_size=4))
def test_the_shared_facts_record_what_a_fresh_computation_records(
        requests, example_bundle) -> None:
    memo = IdentityParts()  # one across the requests, as a service holds it
    for principal, action, resource, context, live, age, delegated, reserved in requests:
        who = identity_of(principal, age)
        if delegated:
            who = replace(who, actor=ETL, chain_depth=1, actor_chain=(ETL,))
        pep_context = contexts_for(action, context)
        if reserved:  # refused before Cedar runs: the record computes the facts itself
            pep_context = {**pep_context, "credential": {"age_s": 0}}
        decision = decided(example_bundle, who, action, resource, pep_context, live, memo)
        unshared = decided(example_bundle, who, action, resource, pep_context, live)
        assert decision.as_dict() == unshared.as_dict()
        request = AuthorizeInput(credential=BearerToken("t"), action=action,
                                 resource=resource, context=pep_context)
        shared = record_bytes(decision, request, example_bundle, memo)
        fresh = record_bytes(replace(unshared, credential_context=None), request,
                             example_bundle, None)
        assert shared == fresh
        recorded = orjson.loads(shared)["credential_context"]
        declared = example_bundle.actions.resolve(action).declares_credential
        assert recorded == (credential_facts(who, live.now) if declared else None)


def test_the_facts_are_computed_once_per_decision(example_bundle, monkeypatch) -> None:
    """Cedar's ``context.credential`` and the record's ``credential_context`` are one
    computation (fails if either computes its own)."""
    calls: list[VerifiedIdentity] = []

    def counted(identity: VerifiedIdentity, now: Any) -> dict[str, Any]:
        calls.append(identity)
        return credential_facts(identity, now)

    for module in ("pdp.decision.decide", "pdp.decision.cedar_request", "pdp.decision.record"):
        monkeypatch.setattr(sys.modules[module], "credential_facts", counted)
    who = identity_of((ETL, frozenset({"pipelines"}), frozenset(), "jwt-svid"), 60)
    live = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
    resource = ResourceRef("App::Dataset", "sales-daily")
    assert example_bundle.actions.resolve("read").declares_credential
    decision = decided(example_bundle, who, "read", resource, {}, live)
    record = decision_record(decision, AuthorizeInput(credential=None, action="read",
                                                      resource=resource),
                             latency_us=1, bundle=example_bundle)
    assert calls == [who]
    assert record["credential_context"] == credential_facts(who, MONDAY_10)


@settings(max_examples=40, deadline=None)
@given(live=lives, shift_us=st.integers(1, 10**9))
def test_the_record_and_the_answer_show_their_own_decisions_timestamp(
        live, shift_us, example_bundle) -> None:
    """The timestamp is formatted once per decision and shown by the record and the answer;
    a copy with another timestamp, made after a rendering, shows its own."""
    who = identity_of((ETL, frozenset({"pipelines"}), frozenset(), "jwt-svid"), 60)
    resource = ResourceRef("App::Dataset", "sales-daily")
    decision = decided(example_bundle, who, "read", resource, {}, live)
    request = AuthorizeInput(credential=None, action="read", resource=resource)
    text = decision.timestamp.isoformat().replace("+00:00", "Z")
    assert decision.as_dict()["timestamp"] == text
    assert decision_record(decision, request, latency_us=1)["timestamp"] == text
    later = replace(decision, timestamp=decision.timestamp + timedelta(microseconds=shift_us))
    later_text = later.timestamp.isoformat().replace("+00:00", "Z")
    assert later_text != text
    assert decision_record(later, request, latency_us=1)["timestamp"] == later_text
    assert later.as_dict()["timestamp"] == later_text


@settings(max_examples=60, deadline=None)
@given(order=st.lists(st.tuples(principals, st.integers(0, 3)), min_size=1, max_size=12))
def test_the_workload_entity_is_each_identitys_own_whatever_came_before(order) -> None:
    """One memo across identities, some sharing a principal id: each gets the entity
    built from itself (fails with a memo keyed on the principal id, or on nothing)."""
    memo = IdentityParts()
    made: dict[tuple[Any, int], VerifiedIdentity] = {}
    for principal, n in order:
        who = made.setdefault((principal, n), identity_of(principal, n))  # as the cache shares
        entity = memo.workload(who)
        assert entity == principal_entity(who) and entity.cache_key is who


@settings(max_examples=150, deadline=None)
@given(offset_min=st.sampled_from([0, 0, 60, -330]), micro=st.sampled_from([0, 1, 999_999]),
       same_object=st.booleans(), ttl_s=st.integers(0, 10**6))
def test_the_timestamps_texts_are_those_isoformat_writes(
        offset_min, micro, same_object, ttl_s) -> None:
    """``timestamp_text`` takes the snapshot's text only for the same UTC instant object;
    another zone, or another instant, is formatted itself. The record's
    ``valid_until`` and the answer's are one ``isoformat``."""
    at = MONDAY_10.replace(microsecond=micro).astimezone(timezone(timedelta(minutes=offset_min)))
    live_now = at if same_object else at + timedelta(microseconds=1)
    live = LiveSnapshot(now=live_now, incident=False, risk_level=0, business_hours=True)
    live.as_dict()  # the snapshot's text formatted first, as a decision does
    until = at + timedelta(seconds=ttl_s)
    decision = Decision(decision_id="d", decision="allow", timestamp=at, principal=None,
                        action="read", resource=None, reasons=(), reason_codes=(),
                        explanation="", errors=(), version=None, live=live, valid_until=until)
    request = AuthorizeInput(credential=None, action="read",
                             resource=ResourceRef("App::Dataset", "sales-daily"))
    record = decision_record(decision, request, latency_us=1)
    answer = decision.as_dict()
    assert record["timestamp"] == answer["timestamp"] == at.isoformat().replace("+00:00", "Z")
    assert record["valid_until"] == until.isoformat()
    assert answer["valid_until"] == until.isoformat().replace("+00:00", "Z")
