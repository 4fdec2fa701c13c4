"""The entity slicer's literals (pdp.engine.literals) walk a condition by node type; they
must be exactly what cedarpy's generic walk (``pst.entity_uids``) finds: on generated
bundles, on the example bundle, on conditions built to nest every expression kind, and
when the walk meets a node type it does not list (it hands that node to cedarpy)."""

from __future__ import annotations

import cedarpy
import pytest
from cedarpy import pst
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.engine import literals
from pdp.engine.literals import condition_literals
from tests.conftest import POLICIES, examples
from tests.engine.cedar_bundles import Case, cases


def assert_same_literals(text: str) -> None:
    nodes = cedarpy.policies_to_pst(text)
    for node in (*nodes.static_policies.values(), *nodes.templates.values()):
        assert condition_literals(node.clauses) == set(pst.entity_uids(node.clauses))


@settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_generated_policies_name_the_literals_cedarpy_finds(case: Case) -> None:
    for name, text in case.files().items():
        if name.endswith(".cedar"):
            assert_same_literals(text)


def test_the_example_bundle_names_the_literals_cedarpy_finds() -> None:
    texts = [p.read_text() for p in POLICIES.glob("*.cedar")]
    assert texts
    for text in texts:
        assert_same_literals(text)


UID = st.sampled_from(['A::"x"', 'A::"y"', 'B::C::"x"', 'A::"x\\"y"', 'Pdp::Workload::"s"'])
LEAF = st.one_of(UID, st.sampled_from(["principal", "context.a", '"s"', "1", "true", "?principal"]))


def expr(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map(lambda p: f"({p[0]} == {p[1]})"),
        st.tuples(children, children).map(lambda p: f"({p[0]} in {p[1]})"),
        children.map(lambda c: f"(!{c})"),
        children.map(lambda c: f"(-{c})"),
        children.map(lambda c: f"({c}.a)"),
        children.map(lambda c: f"({c} has a.b)"),
        children.map(lambda c: f'({c} like "a*")'),
        st.tuples(children, st.one_of(st.none(), children)).map(
            lambda p: f"({p[0]} is A)" if p[1] is None else f"({p[0]} is A in {p[1]})"),
        st.tuples(children, children, children).map(
            lambda p: f"(if {p[0]} then {p[1]} else {p[2]})"),
        st.lists(children, max_size=3).map(lambda cs: f"[{', '.join(cs)}]"),
        st.lists(children, max_size=3).map(
            lambda cs: "{" + ", ".join(f"f{i}: {c}" for i, c in enumerate(cs)) + "}"),
        children.map(lambda c: f'ip("10.0.0.1").isInRange({c})'),
    )


CONDITION = st.recursive(LEAF, expr, max_leaves=12)


@settings(max_examples=examples(300), deadline=None)
@given(conditions=st.lists(st.tuples(st.sampled_from(["when", "unless"]), CONDITION),
                           min_size=1, max_size=3))
def test_every_expression_kind_names_the_literals_cedarpy_finds(
        conditions: list[tuple[str, str]]) -> None:
    body = " ".join(f"{kind} {{ {c} }}" for kind, c in conditions)
    text = f"permit(principal == ?principal, action, resource) {body};"
    try:
        cedarpy.policies_to_pst(text)
    except ValueError:  # Cedar's parser refused the combination: nothing to compare
        return
    assert_same_literals(text)


def test_a_node_type_the_walk_does_not_list_goes_to_cedarpys_walk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = ('permit(principal, action, resource) when { [A::"in-a-set", {r: B::"in-a-record"}]'
            '.contains(principal) && (if context.a then C::"in-a-branch" else principal) == '
            'resource };')
    node = cedarpy.policies_to_pst(text).static_policies["policy0"]
    expected = set(pst.entity_uids(node.clauses))
    assert len(expected) == 3
    for kind in (pst.Set, pst.Record, pst.IfThenElse, pst.BinaryOp, pst.When):
        with monkeypatch.context() as m:
            m.delitem(literals._CHILDREN, kind)
            assert condition_literals(node.clauses) == expected
