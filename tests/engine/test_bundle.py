"""Loading, validating and versioning policy bundles."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pdp.engine import BundleInvalid, load_bundle
from pdp.engine.store import BundleStore
from tests.conftest import POLICIES


def _problems(directory: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(directory)
    return [str(p) for p in info.value.problems]


def test_example_bundle_loads_with_every_policy_annotated(example_bundle) -> None:
    assert "dataset.pipelines.read-write" in example_bundle.policies
    assert all(p.reason for p in example_bundle.policies.values())
    read = example_bundle.actions.resolve("read")
    assert read.declares_live and read.declares_credential
    assert len(example_bundle.version.sha256) == 64


def test_policy_without_id_loads_named_by_file_and_position_with_a_warning(bundle_copy) -> None:
    d = bundle_copy()
    (d / "extra.cedar").write_text(
        '@reason("r")\npermit(principal, action == App::Action::"read", resource);\n')
    bundle = load_bundle(d)
    assert bundle.policies["extra.cedar#0"].reason == "r"
    assert any(str(w).startswith("extra.cedar:1: policy 'extra.cedar#0': no @id")
               for w in bundle.warnings)


def test_policy_without_reason_loads_with_a_sentence_naming_its_place(bundle_copy) -> None:
    d = bundle_copy()
    (d / "extra.cedar").write_text(
        '\n@id("x.no-reason")\npermit(principal, action == App::Action::"read", resource);\n')
    bundle = load_bundle(d)
    assert bundle.policies["x.no-reason"].reason == (
        "The permit policy at extra.cedar line 2 (it has no @reason)")
    assert any(str(w).startswith("extra.cedar:2: policy 'x.no-reason': no @reason")
               for w in bundle.warnings)


def test_duplicate_ids_across_files_are_refused(bundle_copy) -> None:
    d = bundle_copy()
    (d / "dup.cedar").write_text(
        '@id("api.call.scoped") @reason("again")\n'
        'permit(principal, action == App::Action::"read", resource);\n')
    assert any("duplicate @id, already used in apis.cedar" in p for p in _problems(d))


def test_policy_that_breaks_the_schema_is_refused_with_cedars_message(bundle_copy) -> None:
    d = bundle_copy()
    (d / "bad.cedar").write_text(
        '@id("x.typo") @reason("typo")\n'
        'permit(principal, action == App::Action::"read", resource)\n'
        'when { context.live.risk_levle < 2 };\n')
    problems = _problems(d)
    assert any(p.startswith("bad.cedar:1: policy 'x.typo':") and "risk_levle" in p
               for p in problems)


def test_every_problem_is_reported_at_once(bundle_copy) -> None:
    d = bundle_copy()
    (d / "a.cedar").write_text('@id("a\\u0007") permit(principal, action, resource);\n')
    (d / "b.cedar").write_text('@id("api.call.scoped") permit(principal, action, resource);\n')
    (d / "c.cedar").write_text('this is not cedar')
    problems = _problems(d)
    assert any("a.cedar" in p for p in problems)
    assert any("b.cedar" in p for p in problems)
    assert any("c.cedar" in p and "does not parse" in p for p in problems)


def test_bundle_may_not_declare_the_pdp_namespace(bundle_copy) -> None:
    d = bundle_copy()
    schema = d / "schema.cedarschema"
    schema.write_text(schema.read_text() + "\nnamespace Pdp { entity Other; }\n")
    assert any("namespace Pdp is provided by the PDP" in p for p in _problems(d))


def test_missing_schema_is_refused(bundle_copy) -> None:
    d = bundle_copy()
    (d / "schema.cedarschema").unlink()
    assert any("missing schema" in p for p in _problems(d))


def test_entities_that_break_the_schema_are_refused(bundle_copy) -> None:
    d = bundle_copy()
    entities = json.loads((d / "entities.json").read_text())
    entities.append({"uid": {"type": "App::Dataset", "id": "x"},
                     "attrs": {"sensitive": "yes"}, "parents": []})
    (d / "entities.json").write_text(json.dumps(entities))
    assert any(p.startswith("entities.json") for p in _problems(d))


def test_workload_entities_may_not_carry_attributes(bundle_copy) -> None:
    d = bundle_copy()
    entities = json.loads((d / "entities.json").read_text())
    entities.append({"uid": {"type": "Pdp::Workload", "id": "spiffe://example.org/x"},
                     "attrs": {"trust_domain": "evil"}, "parents": []})
    (d / "entities.json").write_text(json.dumps(entities))
    assert any("attributes come from its credential" in p for p in _problems(d))


def test_json_schema_is_accepted_too(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema.json").write_text(json.dumps({"Svc": {
        "entityTypes": {"Doc": {}},
        "actions": {"view": {"appliesTo": {"principalTypes": ["Pdp::Workload"],
                                           "resourceTypes": ["Doc"],
                                           "context": {"type": "Record", "attributes": {
                                               "live": {"type": "Pdp::Live"}}}}}}}}))
    (tmp_path / "p.cedar").write_text(
        '@id("view") @reason("r")\npermit(principal, action == Svc::Action::"view", resource)\n'
        'when { context.live.risk_level < 2 };\n')
    bundle = load_bundle(tmp_path)
    assert bundle.actions.resolve("view").declares_live


def test_version_changes_with_content_and_names_the_git_commit(tmp_path: Path, bundle_copy) -> None:
    d = bundle_copy()
    before = load_bundle(d).version
    assert before.commit is None
    subprocess.run(["git", "init", "-q", str(d)], check=True)
    subprocess.run(["git", "-C", str(d), "add", "."], check=True)
    subprocess.run(["git", "-C", str(d), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "bundle"], check=True)
    head = subprocess.run(["git", "-C", str(d), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    committed = load_bundle(d).version
    assert committed.commit == head and committed.sha256 == before.sha256
    assert not committed.dirty
    (d / "apis.cedar").write_text((d / "apis.cedar").read_text() + "\n// edit\n")
    edited = load_bundle(d).version
    assert edited.sha256 != before.sha256 and edited.dirty


def test_a_bad_reload_keeps_the_good_bundle_serving(bundle_copy) -> None:
    d = bundle_copy()
    outcomes = []
    store = BundleStore(d)
    store.subscribe(outcomes.append)
    good = store.load_initial()
    (d / "broken.cedar").write_text("permit(")
    outcome = store.reload()
    assert not outcome.ok and outcome.problems and outcomes[-1] == outcome
    assert store.current is good
    assert store.last_error is not None
    (d / "broken.cedar").unlink()
    assert store.reload().ok and store.last_error is None


def test_the_watcher_reloads_on_file_change(bundle_copy) -> None:
    import time

    d = bundle_copy()
    store = BundleStore(d)
    store.load_initial()
    first = store.current
    store.start_watching(interval_s=0.05)
    try:
        (d / "apis.cedar").write_text((d / "apis.cedar").read_text() + "\n// touched\n")
        deadline = time.monotonic() + 5
        while store.current is first and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        store.stop_watching()
    assert store.current is not first


def test_the_shipped_bundle_is_formatted() -> None:
    import cedarpy

    for path in POLICIES.glob("*.cedar"):
        text = path.read_text()
        assert cedarpy.format_policies(text, 80, 2).rstrip("\n") + "\n" == text, path.name


ENTITY_MISTAKES = {
    "not JSON": (b'[{"uid": ', ["entities.json: not JSON: "]),
    "not a list of entities": (b'{"uid": {"type": "App::Api", "id": "a"}}',
                               ["entities.json: must be a JSON list of Cedar entities"]),
    "off the schema, a workload with attributes": (json.dumps([
        {"uid": {"type": "Pdp::Workload", "id": "spiffe://example.org/w"},
         "attrs": {"x": 1}, "parents": []},
        {"uid": {"type": "App::Api", "id": "a"}, "attrs": {"scope": 7}, "parents": []},
    ]).encode(), ["entities.json: workload 'spiffe://example.org/w': attributes come from",
                  "entities.json: entities do not match the schema: "]),
}


@pytest.mark.parametrize("share_gil", [False, True], ids=["start", "reload"])
@pytest.mark.parametrize("mistake", list(ENTITY_MISTAKES))
def test_entity_mistakes_are_reported_after_the_policies_own_at_start_and_on_reload(
        bundle_copy, mistake: str, share_gil: bool) -> None:
    """The entities are read before the policies and checked by Cedar beside their parse
    (at start), yet reported as before: after the policies' problems, in file order."""
    d = bundle_copy()
    (d / "broken.cedar").write_text(
        '@id("x.broken") @reason("r")\n'
        'permit(principal, action == App::Action::"read", resource) '
        'when { resource.no_such_attribute };\n')
    data, expected = ENTITY_MISTAKES[mistake]
    (d / "entities.json").write_bytes(data)
    with pytest.raises(BundleInvalid) as info:
        load_bundle(d, share_gil=share_gil)
    problems = [str(p) for p in info.value.problems]
    assert problems[0].startswith("broken.cedar:")
    assert len(problems) == 1 + len(expected)
    for found, start in zip(problems[1:], expected, strict=True):
        assert found.startswith(start)
