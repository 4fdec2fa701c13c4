"""The memo of Cedar's answers (pdp.engine.answer_memo), attacked.

Each test tries to make the memo serve an answer Cedar would not give now: the
same question asked again (cold vs warm), a question differing in one byte of
context, one entity attribute or the resource, a reloaded bundle, a flipped
incident mode or risk level, a dead entity handle whose id a new one reuses, a
flood of distinct questions, concurrent askers, errors and refusals. Every
answer is compared with the memo turned off and, on generated bundles, with raw
Cedar (tests/engine/test_differential_fuzz.py's reference).
"""

from __future__ import annotations

import builtins
import dataclasses
import gc
import json
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import cedarpy
import pytest
from cedarpy import _internal
from hypothesis import HealthCheck, given, settings

from context.model import LiveSnapshot
from pdp.config import Settings
from pdp.decision.decide import decide
from pdp.decision.model import Decision, ResourceRef
from pdp.engine import answer_memo, cedar_call, load_bundle
from pdp.engine.answer_memo import ENTRY_OVERHEAD_BYTES, AnswerMemo
from pdp.engine.bundle import Bundle
from pdp.engine.cache_budget import ANSWER_MEMO_BYTES
from pdp.engine.cedar_call import CedarResult
from pdp.engine.grants import Grant
from pdp.engine.store import BundleStore
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10, examples
from tests.engine.cedar_bundles import Case, cases
from tests.engine.test_differential_fuzz import check_request, load_case, reference

SCHEMA = """namespace App {
  entity Doc = { level: Long, owner: String };
  action "read" appliesTo {
    principal: [Pdp::Workload], resource: [Doc],
    context: { live: Pdp::Live, ticket?: String, n?: Long },
  };
}
"""
POLICIES = """@id("read-low") @reason("Low-level documents are readable.")
permit (principal, action == App::Action::"read", resource) when { resource.level < 3 };
@id("ticket") @reason("A ticket opens any document.")
permit (principal, action, resource) when { context has ticket && context.ticket like "T-*" };
@id("incident") @reason("Nothing during an incident.")
forbid (principal, action, resource) when { context.live.incident };
@id("risky") @reason("Nobody risky.")
forbid (principal, action, resource) when { context.live.principal_risk_level >= 2 };
@id("overflow") @reason("Errors on a huge n.")
forbid (principal, action, resource) when { context has n && context.n * 2 > 10 };
@id("share") @reason("A task grant.")
permit (principal == ?principal, action == App::Action::"read", resource == ?resource);
"""
# The policies above that read no optional context attribute.
LIVE_ONLY = "\n".join(POLICIES.splitlines()[:2] + POLICIES.splitlines()[4:8])
ENTITIES = [{"uid": {"type": "App::Doc", "id": "d1"}, "attrs": {"level": 1, "owner": "a"},
             "parents": []},
            {"uid": {"type": "App::Doc", "id": "d2"}, "attrs": {"level": 4, "owner": "a"},
             "parents": []}]
IDENTITY = VerifiedIdentity(
    principal_id="spiffe://example.org/w", kind="jwt-svid", issuer="spiffe://example.org",
    trust_domain="example.org", path="/w", groups=frozenset(),
    issued_at=MONDAY_10 - timedelta(seconds=5), expires_at=MONDAY_10 + timedelta(minutes=5))
CALM = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)


def write_bundle(directory: Path, policies: str = POLICIES,
                 entities: list[dict[str, Any]] | None = None) -> None:
    (directory / "schema.cedarschema").write_text(SCHEMA)
    (directory / "policies.cedar").write_text(policies)
    (directory / "entities.json").write_text(json.dumps(ENTITIES if entities is None
                                                        else entities))


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    write_bundle(tmp_path)
    return load_bundle(tmp_path)


def without_memo(bundle: Bundle) -> Bundle:
    """The same bundle (the same caches) with the memo turned off."""
    return dataclasses.replace(bundle, answers=AnswerMemo(0, 0))


def ask(bundle: Bundle, resource: ResourceRef | str = "d1", context: dict[str, Any] | None = None,
        live: LiveSnapshot = CALM, grants: tuple[Grant, ...] = ()) -> Decision:
    if isinstance(resource, str):
        resource = ResourceRef("App::Doc", resource)
    return decide(bundle, identity=IDENTITY, action="read", resource=resource,
                  context=context or {}, live=live, now=MONDAY_10, grants=grants)


def answer(decision: Decision) -> tuple[str, frozenset[str], frozenset[tuple[str, str | None]],
                                        tuple[str, ...]]:
    """What a decision says, its policies and errors as sets (Cedar lists them in hash
    order)."""
    return (decision.decision, frozenset(r.policy for r in decision.reasons),
            frozenset((e.code, e.policy) for e in decision.errors), decision.reason_codes)


def test_a_question_asked_again_is_answered_from_the_memo_with_the_same_answer(
        bundle: Bundle) -> None:
    cold = ask(bundle, context={"ticket": "T-1"})
    # The first answer comes with the schema; once the request's shape is known not to
    # need it (pdp.engine.request_shapes), the same question is asked without it.
    ask(bundle, context={"ticket": "T-1"})
    misses = bundle.answers.stats().misses
    warm = [ask(bundle, context={"ticket": "T-1"}) for _ in range(3)]
    stats = bundle.answers.stats()
    assert stats.misses == misses and stats.hits >= 3
    assert {answer(w) for w in warm} == {answer(cold)}
    assert answer(cold) == answer(ask(without_memo(bundle), context={"ticket": "T-1"}))
    assert [w.explanation for w in warm] == [cold.explanation] * 3


@pytest.mark.parametrize(("first", "second"), [
    ({"ticket": "T-1"}, {"ticket": "X-1"}),  # one byte of context
    ({"ticket": "T-1"}, {"ticket": "T-1", "n": 1}),  # one more context value
    ({}, {"ticket": "T-"}),
])
def test_a_question_differing_in_one_byte_of_context_is_asked_of_cedar(
        bundle: Bundle, first: dict[str, Any], second: dict[str, Any]) -> None:
    ask(bundle, "d2", first)
    ask(bundle, "d2", first)  # the shape settled (see the test above)
    misses = bundle.answers.stats().misses
    got = ask(bundle, "d2", second)
    assert bundle.answers.stats().misses == misses + 1
    assert answer(got) == answer(ask(without_memo(bundle), "d2", second))


def test_another_resource_or_one_entity_attribute_is_another_question(tmp_path: Path) -> None:
    write_bundle(tmp_path, entities=[])
    bundle = load_bundle(tmp_path)
    low = ResourceRef("App::Doc", "x", attrs={"level": 1, "owner": "a"})
    high = ResourceRef("App::Doc", "x", attrs={"level": 4, "owner": "a"})
    other = ResourceRef("App::Doc", "y", attrs={"level": 1, "owner": "a"})
    assert ask(bundle, low).decision == "allow"
    assert ask(bundle, high).decision == "deny"  # one attribute: another entity handle
    assert ask(bundle, low).decision == "allow"
    misses = bundle.answers.stats().misses
    assert ask(bundle, other).decision == "allow"
    assert bundle.answers.stats().misses == misses + 1


def test_a_grant_linked_or_not_is_another_policy_set_hence_another_question(
        bundle: Bundle) -> None:
    share = Grant(id="g1", template="share", principal=IDENTITY.principal_id,
                  resource_type="App::Doc", resource_id="d2",
                  expires_at=MONDAY_10 + timedelta(minutes=5), task="t", created_by=None,
                  created_at=MONDAY_10)
    for _ in range(2):
        assert ask(bundle, "d2").decision == "deny"
        granted = ask(bundle, "d2", grants=(share,))
        assert granted.decision == "allow"
        assert [r.policy for r in granted.reasons] == ["grant:g1"]


def test_incident_mode_or_a_principals_risk_flipping_changes_the_answer_at_once(
        bundle: Bundle) -> None:
    assert ask(bundle).decision == "allow"
    assert ask(bundle).decision == "allow"  # warm
    incident = dataclasses.replace(CALM, incident=True)
    assert ask(bundle, live=incident).decision == "deny"
    assert ask(bundle).decision == "allow"
    risky = dataclasses.replace(CALM, principal_risk_level=2)
    decision = ask(bundle, live=risky)
    assert decision.decision == "deny" and [r.policy for r in decision.reasons] == ["risky"]
    assert ask(bundle, live=dataclasses.replace(CALM, principal_risk_level=1)).decision == "allow"


def test_a_value_no_policy_reads_does_not_split_the_question(tmp_path: Path) -> None:
    """Only the context the policies read is sent schema-free, hence in the key: the
    clock, the global risk level and the business-hours flag (read by no policy here)
    changing is still a hit. (``context has ticket`` reads the context whole:
    ``pdp.engine.context_reads``; so the bundle here has no such policy.)"""
    write_bundle(tmp_path, LIVE_ONLY)
    bundle = load_bundle(tmp_path)
    ask(bundle)
    ask(bundle)  # the shape is now known schema-free
    misses = bundle.answers.stats().misses
    later = dataclasses.replace(CALM, now=MONDAY_10 + timedelta(seconds=1), risk_level=1,
                                business_hours=False)
    assert ask(bundle, live=later).decision == "allow"
    assert bundle.answers.stats().misses == misses
    assert ask(bundle, live=dataclasses.replace(later, incident=True)).decision == "deny"
    assert bundle.answers.stats().misses == misses + 1


@pytest.mark.parametrize("change", ["policies", "entities"])
def test_a_reload_never_serves_the_old_bundles_answer(tmp_path: Path, change: str) -> None:
    write_bundle(tmp_path)
    old = load_bundle(tmp_path)
    assert ask(old, "d2").decision == "deny" and ask(old, "d2").decision == "deny"
    if change == "policies":
        write_bundle(tmp_path, POLICIES.replace("resource.level < 3", "resource.level < 5"))
    else:
        write_bundle(tmp_path, entities=[{**ENTITIES[1], "attrs": {"level": 2, "owner": "a"}}])
    new = load_bundle(tmp_path)
    assert new.answers is not old.answers and new.answers.stats().entries == 0
    assert ask(new, "d2").decision == "allow"
    assert ask(old, "d2").decision == "deny"  # the old bundle keeps its own answers


def test_cedar_errors_are_memoized_exactly(bundle: Bundle) -> None:
    huge = {"n": 9223372036854775807}  # n * 2 overflows: the forbid errors, denied
    cold = ask(bundle, context=huge)
    warm = ask(bundle, context=huge)
    assert cold.decision == warm.decision == "deny"
    assert answer(cold) == answer(warm) == answer(ask(without_memo(bundle), context=huge))
    assert {e.policy for e in warm.errors} == {"overflow"}


def test_a_request_the_schema_refuses_is_refused_again_warm(bundle: Bundle) -> None:
    bad = {"ticket": 7}  # off the schema: Cedar refuses to build the request
    cold, warm = ask(bundle, context=bad), ask(bundle, context=bad)
    assert cold.reason_codes[0] == warm.reason_codes[0] == "request.invalid"
    assert answer(cold) == answer(warm) == answer(ask(without_memo(bundle), context=bad))


def test_an_exception_out_of_cedar_is_not_kept(bundle: Bundle,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = cedar_call.is_authorized_json

    def failing(*args: Any) -> CedarResult:
        raise RuntimeError("cedar crashed")

    monkeypatch.setattr(cedar_call, "is_authorized_json", failing)
    failed = ask(bundle)
    assert failed.decision == "deny" and "cedar crashed" in failed.explanation
    assert bundle.answers.stats().entries == 0
    monkeypatch.setattr(cedar_call, "is_authorized_json", real)
    assert ask(bundle).decision == "allow"


PRINCIPAL = {"type": "Pdp::Workload", "id": "w"}
ACTION = {"type": "Action", "id": "read"}
RESOURCE = {"type": "Doc", "id": "d"}
FLAT = cedarpy.PolicySet.from_str(
    'permit (principal, action, resource) when { resource.ok };')


def doc_entities(ok: bool) -> cedarpy.Entities:
    return cedarpy.Entities.from_json_str(json.dumps(
        [{"uid": RESOURCE, "attrs": {"ok": ok}, "parents": []}]))


@pytest.mark.parametrize("first_dies", [True, False])
def test_an_entity_handle_at_another_ones_address_is_not_served_its_answer(
        monkeypatch: pytest.MonkeyPatch, first_dies: bool) -> None:
    """The key names the entity handle by address; an address is reused once its object
    is gone. Every entity handle is given one address here (CPython's allocator reuses
    one only by chance), so the key alone cannot tell them apart."""
    real_id = builtins.id
    monkeypatch.setattr(answer_memo, "id", lambda obj: 1 if isinstance(
        obj, (cedarpy.Entities, _internal.Entities)) else real_id(obj), raising=False)
    memo = AnswerMemo()
    first = doc_entities(True)
    assert memo.is_authorized(PRINCIPAL, ACTION, RESOURCE, {}, FLAT, first, None,
                              policy_weight=0).allowed
    if first_dies:
        del first
        gc.collect()
    second = doc_entities(False)
    assert not memo.is_authorized(PRINCIPAL, ACTION, RESOURCE, {}, FLAT, second, None,
                                  policy_weight=0).allowed
    assert memo.stats().entries == 1  # the stale answer was replaced


def test_the_memo_does_not_keep_an_entity_handle_alive() -> None:
    memo = AnswerMemo()
    entities = doc_entities(True)
    memo.is_authorized(PRINCIPAL, ACTION, RESOURCE, {}, FLAT, entities, None, policy_weight=0)
    watch = __import__("weakref").ref(entities)
    del entities
    gc.collect()
    assert watch() is None


def test_a_flood_of_distinct_questions_keeps_the_memo_within_its_bounds() -> None:
    memo = AnswerMemo(capacity=200 * (ENTRY_OVERHEAD_BYTES + 64), max_entries=150)
    entities = doc_entities(True)
    sets = [cedarpy.PolicySet.from_str(f'@id("p{i}") permit (principal, action, resource);')
            for i in range(5)]
    for i in range(3_000):
        context = {"pad": "x" * (i % 40), "i": i}
        result = memo.is_authorized(PRINCIPAL, ACTION, RESOURCE, context, sets[i % 5], entities,
                                    None, policy_weight=2_000)
        assert result.allowed
        stats = memo.stats()
        assert stats.entries <= 150 and stats.weight <= memo._capacity
    # The weight is exactly what is held: the entries and each policy set once.
    held = {id(e.policy_set) for e in memo._table.values()}
    assert memo.stats().weight == sum(e.weight for e in memo._table.values()) + 2_000 * len(held)
    # And the most recent questions are still answered from it.
    hits = memo.stats().hits
    memo.is_authorized(PRINCIPAL, ACTION, RESOURCE, {"pad": "x" * (2_999 % 40), "i": 2_999},
                       sets[2_999 % 5], entities, None, policy_weight=2_000)
    assert memo.stats().hits == hits + 1


def test_an_answer_heavier_than_the_memo_is_given_not_kept() -> None:
    memo = AnswerMemo(capacity=ENTRY_OVERHEAD_BYTES + 100)
    entities = doc_entities(True)
    assert memo.is_authorized(PRINCIPAL, ACTION, RESOURCE, {"big": "x" * 1_000}, FLAT, entities,
                              None, policy_weight=0).allowed
    assert memo.stats().entries == 0


def test_a_memo_turned_off_asks_cedar_every_time() -> None:
    memo = AnswerMemo(0, 0)
    entities = doc_entities(True)
    for _ in range(2):
        memo.is_authorized(PRINCIPAL, ACTION, RESOURCE, {}, FLAT, entities, None,
                           policy_weight=0)
    assert memo.stats() == dataclasses.replace(memo.stats(), entries=0, hits=0, weight=0)


def test_concurrent_askers_get_cedars_answers_and_the_bounds_hold() -> None:
    memo = AnswerMemo(capacity=60 * (ENTRY_OVERHEAD_BYTES + 40), max_entries=50)
    handles = [doc_entities(ok) for ok in (True, False)]
    wrong: list[str] = []

    def worker(seed: int) -> None:
        for i in range(600):
            n = (i * 7 + seed) % 97
            entities = handles[n % 2]
            got = memo.is_authorized(PRINCIPAL, ACTION, RESOURCE, {"n": n}, FLAT, entities,
                                     None, policy_weight=0)
            if got.allowed != (n % 2 == 0):
                wrong.append(f"{n}: {got}")

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
    stats = memo.stats()
    assert stats.entries <= 50 and stats.weight <= memo._capacity and stats.hits > 0
    assert stats.weight == sum(e.weight for e in memo._table.values())


def _check_repeated(case: Case) -> None:
    """Every request of ``case`` three times over, interleaved (the third pass asks only
    questions the memo holds): each answer is raw Cedar's and the memo-off bundle's."""
    with tempfile.TemporaryDirectory() as directory:
        bundle = load_case(case, Path(directory))
    plain = without_memo(bundle)
    raw_policies, static, by_cedar_id = reference(case)
    order = list(enumerate(case.requests))
    misses_after: list[int] = []
    for rounds in (order, order[::-1], order[1::2] + order[::2]):
        for number, request in rounds:
            check_request(case, bundle, raw_policies, static, by_cedar_id, request, number)
            check_request(case, plain, raw_policies, static, by_cedar_id, request, number)
        misses_after.append(bundle.answers.stats().misses)
    assert plain.answers.stats().entries == 0
    # After two passes every question's shape is settled: the third asks Cedar nothing new.
    assert misses_after[2] == misses_after[1], misses_after


@settings(max_examples=examples(100), deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(case=cases())
def test_memoized_answers_equal_raw_cedar_and_memo_off_on_generated_bundles(case: Case) -> None:
    _check_repeated(case)


def test_the_setting_sizes_each_loaded_bundles_memo_and_zero_turns_it_off(
        tmp_path: Path) -> None:
    assert Settings().answer_memo_bytes == ANSWER_MEMO_BYTES
    write_bundle(tmp_path)
    off = BundleStore(tmp_path, answer_memo_bytes=0)
    bundle = off.load_initial()
    assert not bundle.answers.enabled
    assert [ask(bundle).decision for _ in range(3)] == ["allow"] * 3
    assert bundle.answers.stats() == dataclasses.replace(bundle.answers.stats(), entries=0,
                                                         hits=0, weight=0)
    small = BundleStore(tmp_path, answer_memo_bytes=ENTRY_OVERHEAD_BYTES * 20)
    small.load_initial()
    small.reload(share_gil=False)
    reloaded = small.current
    assert reloaded is not None and reloaded.answers.enabled
    for n in range(40):
        ask(reloaded, context={"ticket": f"T-{n}"})
    assert reloaded.answers.stats().weight <= ENTRY_OVERHEAD_BYTES * 20
