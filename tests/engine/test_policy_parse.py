"""A policy file parsed in chunks (pdp.engine.policy_parse: so that a reload leaves the
event loop the GIL, or, at start, so that Cedar parses ahead in a helper thread while
this one turns the chunks into nodes) gives exactly the nodes of one
``cedarpy.policies_to_pst`` of the whole file, or the same error: on generated bundles,
and on text built to break the cut (comments and strings holding ``;``, code after the
last policy, files that do not parse).
The policy set a reload builds chunk by chunk from Cedar's JSON form is the set
``PolicySet.from_pst`` builds at start.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cedarpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.engine import policy_parse
from pdp.engine.bundle import load_bundle
from pdp.engine.policy_parse import parse_ahead, parse_in_chunks
from pdp.engine.policy_source import split_with_rest
from tests.conftest import examples
from tests.engine.cedar_bundles import Case, cases


def chunked(text: str) -> cedarpy.pst.PolicySet:
    spans, rest = split_with_rest(text)
    return parse_in_chunks(text, spans, rest)


def parsed_ahead(text: str) -> cedarpy.pst.PolicySet:
    spans, rest = split_with_rest(text)
    with ThreadPoolExecutor(max_workers=2) as helper:
        return parse_ahead(text, spans, rest, helper)()


CHUNKED_WAYS = pytest.mark.parametrize("way", [chunked, parsed_ahead], ids=["reload", "start"])


def outcome(parse: object, text: str) -> tuple[str, object]:
    try:
        nodes = parse(text)  # type: ignore[operator]
    except ValueError:
        return "refused", None
    return "nodes", (list(nodes.static_policies.items()), list(nodes.templates.items()))


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Generated files hold a few dozen policies: chunks of 3 cut them in many places.
    monkeypatch.setattr(policy_parse, "CHUNK_POLICIES", 3)
    monkeypatch.setattr(policy_parse, "CHUNK_POLICIES_AHEAD", 3)


@CHUNKED_WAYS
@settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_generated_bundles_parse_to_the_same_nodes_in_chunks(way: object, case: Case) -> None:
    for name, text in case.files().items():
        if name.endswith(".cedar"):
            assert outcome(way, text) == outcome(cedarpy.policies_to_pst, text)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_a_reload_builds_the_policy_set_a_start_builds(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in case.files().items():
            (Path(tmp) / name).write_text(text)
        at_start = load_bundle(tmp)
        on_reload = load_bundle(tmp, share_gil=True)
    assert on_reload.policy_set.to_pst() == at_start.policy_set.to_pst()
    assert on_reload.policy_set.templates() == at_start.policy_set.templates()
    assert on_reload.policies == at_start.policies


POLICY = st.sampled_from([
    'permit(principal, action, resource);',
    '@id("a;b") permit(principal, action, resource) when { "x;y" like "*;*" };',
    'forbid(principal == ?principal, action, resource in ?resource);',
    '@reason("say \\"hi\\"; ok") permit(principal, action == Action::"r", resource);',
    'permit(principal, action, resource) when { 1 == 1 }; // trailing; comment',
    '// a comment; with a semicolon\npermit(principal, action, resource is T);',
    'permit(principal, action, resource) unless { context.a };',
])
NOISE = st.sampled_from(["", "\n", "  ", "// c;\n", ";", "permit(", '"open', "x", "/* */"])


@CHUNKED_WAYS
@settings(max_examples=examples(400), deadline=None)
@given(parts=st.lists(st.tuples(POLICY, NOISE), max_size=12), tail=NOISE)
def test_text_built_to_break_the_cut_parses_as_a_whole_file_does(
        way: object, parts: list[tuple[str, str]], tail: str) -> None:
    text = "".join(p + n for p, n in parts) + tail
    assert outcome(way, text) == outcome(cedarpy.policies_to_pst, text)


@CHUNKED_WAYS
def test_code_after_the_last_policy_is_refused_as_a_whole_file_refuses_it(way: Any) -> None:
    text = "permit(principal, action, resource);\nforbid(principal, action, resource)"
    with pytest.raises(ValueError):
        cedarpy.policies_to_pst(text)
    with pytest.raises(ValueError):
        way(text)


@CHUNKED_WAYS
def test_numbers_continue_across_chunks(way: Any) -> None:
    text = "\n".join(f'@id("p{i}") permit(principal, action, resource) when {{ {i} == {i} }};'
                     for i in range(8)) + "\npermit(principal == ?principal, action, resource);"
    nodes = way(text)
    assert list(nodes.static_policies) == [f"policy{i}" for i in range(8)]
    assert list(nodes.templates) == ["policy8"]
    assert all(node.id == cedar_id for cedar_id, node in nodes.static_policies.items())
    assert dict(nodes.static_policies["policy7"].annotations)["id"] == "p7"
