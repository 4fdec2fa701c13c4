"""The bundle archive: every version that decided, by SHA-256, loadable again as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.audit.auditing.archive import (
    ArchiveError,
    BundleArchive,
    archive_dir,
    policy_text,
    policy_texts,
    split_policies,
)
from pdp.audit.auditing.archive import _json as archive_json
from pdp.engine.bundle import load_bundle
from tests.conftest import examples


def test_a_bundle_is_stored_under_its_sha256_once(tmp_path: Path, example_bundle) -> None:
    archive = BundleArchive(tmp_path / "bundles")
    assert archive.store(example_bundle) is True
    assert archive.store(example_bundle) is False
    sha = example_bundle.version.sha256
    stored = archive.files(sha)
    assert stored == dict(example_bundle.files)
    assert archive.version(sha)["sha256"] == sha
    assert [v["sha256"] for v in archive.versions()] == [sha]
    assert not [p for p in (tmp_path / "bundles").iterdir() if p.name.startswith(".tmp")]


def test_a_fresh_archive_object_sees_versions_written_by_another(tmp_path, example_bundle) -> None:
    BundleArchive(tmp_path / "b").store(example_bundle)
    assert BundleArchive(tmp_path / "b").store(example_bundle) is False


def test_each_policy_text_carries_its_annotations_and_cedar(tmp_path, example_bundle) -> None:
    archive = BundleArchive(tmp_path / "bundles")
    archive.store(example_bundle)
    policies = archive.policies(example_bundle.version.sha256)
    assert set(policies) == set(example_bundle.policies)
    guard = policies["guard.risk.elevated"]
    assert guard.effect == "forbid" and guard.file == "guards.cedar"
    assert guard.text is not None
    assert guard.text.startswith('@id("guard.risk.elevated")')
    assert "forbid (" in guard.text and "context.live.risk_level >= 2" in guard.text
    assert guard.advice and guard.reason.startswith("At high or critical risk")


def test_an_archived_version_loads_again_with_its_recorded_version(tmp_path, example_bundle) -> None:
    archive = BundleArchive(tmp_path / "bundles")
    archive.store(example_bundle)
    loaded = archive.load(example_bundle.version.sha256)
    assert loaded.version == example_bundle.version  # the commit as recorded, not the archive's
    assert set(loaded.policies) == set(example_bundle.policies)
    assert archive.load(example_bundle.version.sha256) is loaded  # cached


def test_an_altered_archive_is_refused(tmp_path, example_bundle) -> None:
    archive = BundleArchive(tmp_path / "bundles")
    archive.store(example_bundle)
    sha = example_bundle.version.sha256
    target = tmp_path / "bundles" / sha / "files" / "guards.cedar"
    target.write_text(target.read_text().replace("risk_level >= 2", "risk_level >= 3"))
    with pytest.raises(ArchiveError, match="altered"):
        BundleArchive(tmp_path / "bundles").load(sha)


@pytest.mark.parametrize("sha", ["../../etc", "0" * 63, "A" * 64, "0" * 64])
def test_unknown_or_malformed_versions_are_an_archive_error(tmp_path, sha) -> None:
    archive = BundleArchive(tmp_path / "bundles")
    assert archive.has(sha) is False
    with pytest.raises(ArchiveError):
        archive.load(sha)


def test_a_template_keeps_its_source_text(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema").write_text(
        "namespace App { entity Doc; action \"read\" appliesTo { principal: Pdp::Workload, "
        "resource: Doc }; }")
    (tmp_path / "t.cedar").write_text(
        '@id("grant")\n@reason("A grant.")\npermit (principal == ?principal, '
        'action == App::Action::"read", resource == ?resource);\n')
    bundle = load_bundle(tmp_path)
    text = policy_texts(bundle)["grant"]
    assert text is not None and "permit (principal == ?principal," in text


def test_the_pdp_archives_each_bundle_version_it_loads(components) -> None:
    archive = components.archive
    first = components.bundles.current
    assert archive is not None and archive.root == archive_dir(components.settings.state_dir)
    assert archive.has(first.version.sha256)
    policy = components.settings.policies / "datasets.cedar"
    policy.write_text(policy.read_text().replace("Data pipelines may read and write",
                                                 "Pipelines may read and write"))
    assert components.bundles.reload().ok
    second = components.bundles.current
    assert second.version.sha256 != first.version.sha256
    assert archive.has(second.version.sha256) and archive.has(first.version.sha256)
    old = archive.policies(first.version.sha256)["dataset.pipelines.read-write"]
    assert "Data pipelines may read and write" in old.reason
    meta = json.loads((archive.root / second.version.sha256 / "version.json").read_text())
    assert meta["archived_at"]


def test_policies_are_cut_out_of_their_file_with_the_comments_above_them() -> None:
    text = ('// header\n@id("a")\n@reason("x; y")\npermit (principal, action, resource);\n\n'
            '// about b; with a semicolon\n@id("b")\n@reason("\\"quoted;\\"")\n'
            'forbid (principal, action, resource) when { context.s == ";" };\n// trailing\n')
    chunks = split_policies(text)
    assert len(chunks) == 2
    assert chunks[0].startswith("// header") and chunks[0].endswith("resource);")
    assert "// about b; with a semicolon" in chunks[1] and chunks[1].endswith('";" };')


def test_the_rendered_fallback_shows_a_static_policy(example_bundle) -> None:
    text = policy_text(example_bundle.policies["guard.risk.elevated"])
    assert text is not None and "forbid" in text and '@id("guard.risk.elevated")' in text


ARCHIVED_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
              st.text(st.characters(exclude_categories=()))),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=examples(300), deadline=None)
@given(value=st.dictionaries(st.text(max_size=6), ARCHIVED_VALUES, max_size=5))
def test_archive_json_is_the_standard_librarys_indented_json(value: dict[str, Any]) -> None:
    try:
        expected = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: neither writes it
        with pytest.raises(TypeError):
            archive_json(value)
        return
    assert archive_json(value) == expected + b"\n"
