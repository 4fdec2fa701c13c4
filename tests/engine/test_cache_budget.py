"""The per-worker request caches stay within their budgets (pdp.engine.cache_budget)
however many distinct requests come, and answer exactly when they evict.

The bundle is built so that every request is heavy: each document sits in 150
folders of its own (its entity slice copies ~150 entities) and every scope's
slice holds the 300 policies unconstrained on principal and resource plus the
document's own. A few dozen distinct requests then pass every budget several
times over, so a cache bounded by its count of entries (as before issue 16)
holds several times the budget and the tests below fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context.model import LiveSnapshot
from pdp.decision.decide import asserted_principal, decide
from pdp.decision.model import AssertedSubject, ResourceRef
from pdp.engine import load_bundle
from pdp.engine.bundle import Bundle
from pdp.engine.cache_budget import (
    ENTITY_SLICE_COPIES,
    POLICY_SLICE_POLICIES,
    SCOPE_SLICE_POLICIES,
)
from pdp.engine.entity_slice import ENTITY_SLICE_MIN
from pdp.engine.graph import EntityGraph
from pdp.engine.memo import Memo
from tests.conftest import MONDAY_10

LIVE = LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0, business_hours=True)
DOCS, FOLDERS_PER_DOC, LEVELS = 60, 150, 300
USERS = ("alice", "mallory")
SCHEMA = """
entity Folder;
entity User;
entity Doc in [Folder] { level: Long };
action view appliesTo { principal: [User], resource: [Doc] };
"""


def _policies() -> str:
    # Unconstrained on both sides: in every slice (one weight unit each).
    levels = [f'@id("level-{n}") @reason("Level {n} is open.")\n'
              f'permit (principal, action == Action::"view", resource) '
              f"when {{ resource.level == {n} }};" for n in range(LEVELS)]
    # One per document: each document's slice is a different set of policies.
    mine = [f'@id("no-d{i}") @reason("Mallory may not view d{i}.")\n'
            f'forbid (principal == User::"mallory", action, resource == Doc::"d{i}") '
            f"when {{ {str(i % 2 == 0).lower()} }};" for i in range(DOCS)]
    return "\n".join(levels + mine)


def _entities() -> list[dict[str, object]]:
    out: list[dict[str, object]] = [{"uid": {"type": "User", "id": u}, "attrs": {}, "parents": []}
                                    for u in USERS]
    for i in range(DOCS):
        folders = [{"type": "Folder", "id": f"d{i}-f{j}"} for j in range(FOLDERS_PER_DOC)]
        out += [{"uid": f, "attrs": {}, "parents": []} for f in folders]
        out.append({"uid": {"type": "Doc", "id": f"d{i}"}, "attrs": {"level": (i * 7) % 400},
                    "parents": folders})
    return out


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("heavy")
    (directory / "schema.cedarschema").write_text(SCHEMA)
    (directory / "policies.cedar").write_text(_policies())
    entities = _entities()
    assert len(entities) >= ENTITY_SLICE_MIN  # the sliced path under test
    (directory / "entities.json").write_text(json.dumps(entities))
    return directory


def _expected(user: str, doc: int) -> str:
    return "allow" if (doc * 7) % 400 < LEVELS and not (user == "mallory" and doc % 2 == 0) \
        else "deny"


def _view(bundle: Bundle, user: str, doc: int) -> tuple[str, tuple[str, ...]]:
    identity, principal = asserted_principal(AssertedSubject(type="User", id=user,
                                                             asserted_by="pep"))
    d = decide(bundle, identity=identity, principal=principal, action="view",
               resource=ResourceRef("Doc", f"d{doc}"), context={}, live=LIVE, now=MONDAY_10)
    return d.decision, tuple(sorted(r.policy for r in d.reasons))


def _requests() -> list[tuple[str, int]]:
    return [(user, doc) for doc in range(DOCS) for user in USERS]


def test_every_cache_stays_within_its_budget_however_many_distinct_requests(
        bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    assert bundle.entity_slicer is not None and bundle.index is not None
    for user, doc in _requests():
        _view(bundle, user, doc)
    # Counted from the fixture's shape, not from the memos' own bookkeeping: a request
    # reaches its user, its document and the document's folders; a slice holds the
    # 300 open levels and at most its document's own policy.
    entity_copies = len(bundle.entity_slicer._cache) * (FOLDERS_PER_DOC + 2)
    assert entity_copies <= ENTITY_SLICE_COPIES
    assert len(bundle.index._by_scope) * LEVELS <= SCOPE_SLICE_POLICIES
    assert len(bundle.index._slices) * LEVELS <= POLICY_SLICE_POLICIES
    # And the caches were full, not idle: the bound is what stopped them.
    assert entity_copies > ENTITY_SLICE_COPIES // 2
    assert len(bundle.index._by_scope) * (LEVELS + 2) > SCOPE_SLICE_POLICIES // 2


def test_answers_are_the_same_cold_and_warm_and_after_evictions(bundle_dir: Path) -> None:
    warm = load_bundle(bundle_dir)
    requests = _requests()
    first = {r: _view(warm, *r) for r in requests}
    assert {r: a[0] for r, a in first.items()} == {r: _expected(*r) for r in requests}
    again = {r: _view(warm, *r) for r in reversed(requests)}  # most were evicted
    assert again == first
    for r in requests[::20]:  # each on a bundle that has answered nothing else
        assert _view(load_bundle(bundle_dir), *r) == first[r]


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 12)), max_size=200))
def test_a_weighed_memo_never_holds_more_than_its_capacity(items: list[tuple[int, int]]) -> None:
    weights = dict(items)
    memo: Memo[int, int] = Memo(20, weigh=lambda key, _value: weights[key])
    for key, _ in items:
        assert memo.get(key, lambda k=key: k) == key
        kept = [k for k in weights if k in memo._cache]
        assert sum(weights[k] for k in kept) == memo.weight <= 20


def test_a_value_heavier_than_the_memo_is_answered_not_kept() -> None:
    memo: Memo[str, str] = Memo(10, weigh=lambda _key, value: len(value))
    memo.get("small", lambda: "x" * 4)
    assert memo.get("big", lambda: "y" * 11) == "y" * 11
    assert len(memo) == 1 and memo.weight == 4  # the small one was not pushed out for it


def test_the_least_recently_used_go_first_until_the_new_one_fits() -> None:
    memo: Memo[str, int] = Memo(10, weigh=lambda _key, value: value)
    for key, weight in (("a", 4), ("b", 4), ("c", 2)):
        memo.get(key, lambda w=weight: w)
    memo.get("a", lambda: -1)  # a is now the most recently used
    memo.get("d", lambda: 5)  # drops b (4), then c (2): 4 + 5 fits
    assert sorted(memo._cache) == ["a", "d"] and memo.weight == 9


def test_the_ancestors_memo_keeps_at_most_its_budget_and_answers_after_evicting():
    """A request's uids are whatever the PEP names: the graph's memo must not grow with
    every distinct one (it did, unbounded, before issue 16's hcow)."""
    def parents(uid: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        kind, name = uid
        if kind == "Doc":
            return (("Folder", f"f{int(name) % 7}"),)
        if kind == "Folder":
            return (("Domain", "d0"),)
        return ()

    graph = EntityGraph(parents, budget=50)
    for _ in range(2):  # the second round rebuilds what the first evicted
        for i in range(500):
            assert graph.ancestors(("Doc", str(i))) == {("Folder", f"f{i % 7}"), ("Domain", "d0")}
            assert len(graph) <= 50
    assert graph.ancestors(("Nobody", "x")) == frozenset()
