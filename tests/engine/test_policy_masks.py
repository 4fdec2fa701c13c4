"""The scope index's bitmasks find exactly the policies whose scopes could match.

``PolicyIndex.candidates`` keeps its buckets as bitmasks and position buffers
(pdp.engine.policy_masks) so that a forked worker's lookups write no page its
supervisor built. These tests attack that form: on generated scopes (``==``,
``in``, ``is``, ``is ... in``, unconstrained; action ``==``, ``in [...]``, any)
and requests, the candidates must equal the policies a one-by-one check of each
scope admits (``slicing._matches``, the check linked grants use), with hostile
ids (lone surrogates, NUL, huge strings, ids that join to the same text), every
key sharing one hash, and requests naming nothing the index holds.
"""

from __future__ import annotations

from array import array

import pytest
from cedarpy import pst
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.engine import packed
from pdp.engine.policy_masks import PositionBuckets, mask_of, positions_of
from pdp.engine.slicing import PolicyIndex, _matches
from tests.conftest import examples

# Few enough names that scopes and requests meet; hostile ones among them.
TYPES = ["T", "U", "A::T", "T\x00", "\ud800", "A", "A\x00B"]
IDS = ["x", "y", "", "\x00", "\udfff", "B\x00C", "x" * 5000, "é"]
ACTIONS = [("Action", "read"), ("Action", "write"), ("N::Action", "read"), ("Action", "\ud800")]


def _type(name: str) -> pst.EntityType:
    *namespace, basename = name.split("::")
    return pst.EntityType(basename=basename, namespace=tuple(namespace))


def _uid(uid: tuple[str, str]) -> pst.EntityUid:
    return pst.EntityUid(type=_type(uid[0]), id=uid[1])


uids = st.tuples(st.sampled_from(TYPES), st.sampled_from(IDS))
sides = st.one_of(
    st.just(pst.ScopeAny()),
    uids.map(lambda u: pst.ScopeEq(entity=_uid(u))),
    uids.map(lambda u: pst.ScopeIn(entity=_uid(u))),
    st.sampled_from(TYPES).map(lambda t: pst.ScopeIs(entity_type=_type(t))),
    st.tuples(st.sampled_from(TYPES), uids).map(
        lambda tu: pst.ScopeIsIn(entity_type=_type(tu[0]), entity=_uid(tu[1]))))
action_scopes = st.one_of(
    st.just(pst.ScopeAny()),
    st.sampled_from(ACTIONS).map(lambda a: pst.ActionEq(entity=_uid(a))),
    st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3).map(
        lambda a: pst.ActionIn(entities=tuple(map(_uid, a)))))
scopes = st.tuples(sides, action_scopes, sides)
requests = st.tuples(uids, st.sets(uids, max_size=4), st.sets(st.sampled_from(ACTIONS), min_size=1),
                     uids, st.sets(uids, max_size=4))


def _policies(found: list[tuple[object, object, object]]) -> dict[str, pst.Template]:
    # Ids as hostile as the uids: the index stores them in a buffer too.
    ids = [f"p{i}" if i % 3 else f"p\x00{i}\ud800" for i in range(len(found))]
    return {pid: pst.Template(id=pid, effect="permit", principal=p, action=a,  # type: ignore[arg-type]
                              resource=r, clauses=(), annotations=pst.FrozenMap({}))
            for pid, (p, a, r) in zip(ids, found, strict=True)}


def _expected(policies: dict[str, pst.Template], request: tuple) -> frozenset[str]:
    principal, p_anc, actions, resource, r_anc = request
    return frozenset(pid for pid, node in policies.items()
                     if _matches(node, principal, p_anc, frozenset(actions), resource, r_anc))


@settings(max_examples=examples(300), deadline=None)
@given(found=st.lists(scopes, min_size=2, max_size=40), asked=st.lists(requests, min_size=1,
                                                                       max_size=8))
def test_candidates_are_exactly_the_scopes_that_could_match(found, asked) -> None:
    policies = _policies(found)
    index = PolicyIndex(policies)
    for request in asked:
        principal, p_anc, actions, resource, r_anc = request
        got = index.candidates(principal, p_anc, frozenset(actions), resource, r_anc)
        assert got == _expected(policies, request)


@pytest.mark.parametrize("count", [2, 3, 70])
def test_every_key_sharing_one_hash_still_finds_each_bucket(monkeypatch, count) -> None:
    monkeypatch.setattr(packed, "_hash", lambda _key: 5)
    policies = _policies([(pst.ScopeEq(entity=_uid(("T", f"e{i}\x00"))), pst.ScopeAny(),
                           pst.ScopeIn(entity=_uid(("U\x00", f"{i}"))))
                          for i in range(count)])
    index = PolicyIndex(policies)
    everything = frozenset(ACTIONS)
    for i, pid in enumerate(policies):
        assert index.candidates(("T", f"e{i}\x00"), (), everything, ("X", "r"),
                                [("U\x00", f"{i}")]) == {pid}
        # Joined differently, the same characters name nothing.
        assert index.candidates(("T", f"e{i}"), [("T\x00", f"e{i}")], everything,
                                ("X", "r"), [("U", f"\x00{i}")]) == frozenset()


def test_a_request_naming_nothing_the_index_holds_has_no_candidates() -> None:
    policies = _policies([(pst.ScopeEq(entity=_uid(("T", "x"))), pst.ScopeAny(),
                           pst.ScopeIs(entity_type=_type("U"))),
                          (pst.ScopeIn(entity=_uid(("T", "g"))),
                           pst.ActionEq(entity=_uid(ACTIONS[0])), pst.ScopeAny())])
    index = PolicyIndex(policies)
    assert index.candidates(("Z", "z" * 100_000), (), frozenset({("Zz", "q")}),
                            ("\ud800", "\x00"), ()) == frozenset()
    assert index.candidates(("T", "x"), (), frozenset({ACTIONS[1]}), ("U", "any"),
                            ()) == {next(iter(policies))}


def test_candidate_ids_are_new_objects_and_the_buckets_hold_only_buffers_and_ints() -> None:
    """What keeps a forked worker's lookups off the shared pages: the index hands out
    ids it decodes, and holds no set or tuple per policy that a lookup would read."""
    policies = _policies([(pst.ScopeEq(entity=_uid(("T", f"e{i}"))), pst.ScopeAny(),
                           pst.ScopeAny()) for i in range(10)])
    index = PolicyIndex(policies)
    got = index.candidates(("T", "e3"), (), frozenset(ACTIONS), ("X", "r"), ())
    (pid,) = got
    assert pid == list(policies)[3] and all(pid is not key for key in policies)
    side = vars(index._principal)
    assert isinstance(side["any"], int) and all(isinstance(m, int)
                                                for m in side["by_type"].values())
    buckets = vars(side["by_entity"])
    assert all(isinstance(v, (int, array, packed.PackedKeys)) for v in buckets.values())


@given(st.sets(st.integers(0, 300)))
def test_masks_and_positions_are_inverse(positions) -> None:
    assert list(positions_of(mask_of(positions, 301))) == sorted(positions)


def test_a_bucket_position_outside_the_width_is_refused() -> None:
    with pytest.raises(ValueError):
        PositionBuckets({"k": [3]}, 3)
