"""A slice is built from nodes the worker parses from each policy's own code, which
must be exactly the nodes the load made (``PolicyIndex.nodes``), so that the slice
decides as the shared nodes would: on generated bundles (every construct the
differential tests generate, padded scope indexes), on the example bundle, on
text built to break the split (comments and strings holding ``;``), and when the
code is missing, altered or does not parse alone, where the shared node is used.
The decisions themselves are compared with raw Cedar by ``test_slicing`` and
``test_differential_fuzz``.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from pdp.engine import load_bundle
from pdp.engine.slicing import PolicyIndex
from tests.conftest import REPO, examples
from tests.engine.cedar_bundles import Case, cases


def _own_nodes_are_the_loaded_nodes(directory: Path | str) -> int:
    bundle = load_bundle(directory)
    index = bundle.index
    if index is None:
        return 0
    ids = list(index.policies)
    rebuilt = index.nodes(reversed(ids))  # any order, one call
    assert list(rebuilt) == ids[::-1]
    assert rebuilt == index.policies
    # Parsed anew: the worker's own objects, not the shared ones.
    assert all(rebuilt[pid] is not index.policies[pid] for pid in ids)
    return len(ids)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_generated_bundles_give_the_loaded_nodes(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in case.files().items():
            (Path(tmp) / name).write_text(text)
        _own_nodes_are_the_loaded_nodes(tmp)


def test_the_example_bundle_gives_the_loaded_nodes() -> None:
    assert _own_nodes_are_the_loaded_nodes(REPO / "policies") > 2


def test_text_built_to_break_the_split_gives_the_loaded_nodes(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema").write_text(
        "entity T; action r appliesTo { principal: T, resource: T };")
    (tmp_path / "entities.json").write_text("[]")
    (tmp_path / "p.cedar").write_text(
        '// a comment; with a semicolon\n@id("a;b") @reason("say \\"hi\\"; ok")\n'
        'permit(principal, action == Action::"r", resource) when { "x;y" like "*;*" };\n'
        '// line; comment\n@id("c") forbid(principal is T, action, resource) // tail; comment\n'
        'unless { principal == resource };\n@id("d")\npermit(principal, action, resource);')
    assert _own_nodes_are_the_loaded_nodes(tmp_path) == 3


@pytest.mark.parametrize("code", [None, "", "permit(", "permit(principal, action, resource); "
                                  "permit(principal, action, resource);",
                                  'permit(principal == ?principal, action, resource);'])
def test_a_missing_or_unusable_code_falls_back_to_the_shared_node(code: str | None) -> None:
    from cedarpy import policies_to_pst

    loaded = policies_to_pst('@id("a") permit(principal, action, resource);\n'
                             '@id("b") forbid(principal, action, resource) when { true };')
    nodes = {pid: replace(loaded.static_policies[f"policy{i}"], id=pid)
             for i, pid in enumerate("ab")}
    good = '@id("b") forbid(principal, action, resource) when { true };'
    index = PolicyIndex(nodes, {"b": good} if code is None else {"a": code, "b": good})
    rebuilt = index.nodes(["a", "b", "a"])
    assert list(rebuilt) == ["a", "b"]
    assert rebuilt["a"] is nodes["a"] or rebuilt["a"] == nodes["a"]
    if code in (None, ""):
        assert rebuilt["a"] is nodes["a"]  # nothing to parse: the shared node
        assert rebuilt["b"] == nodes["b"] and rebuilt["b"] is not nodes["b"]
    else:
        # Parsed together, one bad code leaves them all to the shared nodes.
        assert rebuilt == nodes and all(rebuilt[p] is nodes[p] for p in nodes)


def test_an_altered_code_is_not_trusted_silently() -> None:
    """The codes must be the load's own (``pdp.engine.bundle._policy_codes``): a code
    that parses to another policy gives that policy. This is why they are taken from
    the same split the nodes were numbered by, never from elsewhere."""
    from cedarpy import policies_to_pst

    loaded = policies_to_pst('permit(principal, action, resource);\n'
                             'forbid(principal, action, resource);')
    nodes = {pid: replace(loaded.static_policies[f"policy{i}"], id=pid)
             for i, pid in enumerate("ab")}
    index = PolicyIndex(nodes, {"a": "forbid(principal, action, resource);"})
    assert index.nodes(["a"])["a"].effect == "forbid"
