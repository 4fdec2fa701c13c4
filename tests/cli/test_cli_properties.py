"""Properties of the CLI's parsers of untrusted input: suite files and id prefixes."""

from __future__ import annotations

from typing import Any

import pytest
import typer
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp.audit.memory import MemoryDecisionLog
from pdp.authoring.suite_schema import check_suite
from pdp.cli.audit import find_record
from pdp.engine.bundle import Bundle
from tests.conftest import examples

KEYS = ["cases", "defaults", "description", "principal", "action", "resource", "expect",
        "decision", "policies", "type", "id", "live", "grants", "template", "credential",
        "age_s", "live_state", "incidents", "decison", "polices"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(
    ["allow", "deny", "read", "App::Dataset", "dataset.pipelines.read-write",
     "spiffe://example.org/services/etl", "nonexistent.policy", ""]))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents)
def test_any_suite_document_gives_problems_or_a_valid_suite_never_an_exception(
        example_bundle: Bundle, document: Any) -> None:
    text = yaml.safe_dump(document)
    suite, problems = check_suite("tests/x.yaml", text, example_bundle)
    for problem in problems:
        assert problem.startswith("tests/x.yaml:")
    if not problems:  # then every case has what a run reads, with the right types
        for case in suite["cases"]:
            merged = {**(suite.get("defaults") or {}), **case}
            assert {"principal", "action", "resource", "expect"} <= merged.keys()
            assert merged["expect"]["decision"] in ("allow", "deny")


@settings(max_examples=examples(100), deadline=None)
@given(raw=st.binary(max_size=200))
def test_bad_bytes_are_a_problem_not_a_crash(example_bundle: Bundle, raw: bytes) -> None:
    _, problems = check_suite("tests/x.yaml", raw, example_bundle)
    assert problems or yaml.safe_load(raw) is not None


hex_ids = st.lists(st.text("0123456789abcdef", min_size=8, max_size=8), min_size=1,
                   max_size=8, unique=True)


@settings(max_examples=examples(200), deadline=None)
@given(ids=hex_ids, data=st.data())
def test_a_prefix_finds_exactly_the_one_id_it_starts_or_is_refused(
        ids: list[str], data: st.DataObject) -> None:
    log = MemoryDecisionLog()
    for n, decision_id in enumerate(ids):
        log.append_sync({"decision_id": decision_id, "kind": "decision",
                         "timestamp": f"2026-01-05T10:00:{n:02d}.000000Z", "decision": "allow"})
    target = data.draw(st.sampled_from(ids))
    prefix = target[:data.draw(st.integers(1, len(target)))]
    matching = [i for i in ids if i.startswith(prefix)]
    if len(prefix) < 4 and prefix not in ids or len(matching) > 1 and prefix not in ids:
        with pytest.raises(typer.Exit):
            find_record(log, prefix)
    else:
        assert find_record(log, prefix)["decision_id"] == (
            prefix if prefix in ids else matching[0])
    log.close()
