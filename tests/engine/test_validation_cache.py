"""The validation cache (pdp.engine.validation_cache) skips Cedar's validator only for a
policy text it passed before, under the same schema, cedarpy and PDP, on a marker this
PDP's user wrote: attacked with forged, truncated, foreign, linked and shared-writable
markers, a changed schema, a changed cedarpy, a state directory that cannot be written
and two processes writing at once. A bundle loaded on cached verdicts is the bundle a
full validation loads, and decides as raw Cedar does (generated bundles)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import cedarpy
import pytest
from hypothesis import HealthCheck, given, settings

from pdp.components import validation_cache
from pdp.config import Settings
from pdp.engine import bundle as bundle_module
from pdp.engine import validation as validation_module
from pdp.engine import validation_cache as cache_module
from pdp.engine.bundle import Bundle, load_bundle
from pdp.engine.problems import BundleInvalid, BundleProblem
from pdp.engine.store import BundleStore
from pdp.engine.validation_cache import ValidationCache
from tests.conftest import POLICIES, examples
from tests.engine.cedar_bundles import Case, cases
from tests.engine.test_differential_fuzz import check_requests

# Parses, but Cedar's strict validator refuses it: no entity type has the attribute. At
# evaluation the forbid raises an error for every request (denied as an errored forbid).
INVALID = """@id("typo") @reason("no such attribute")
forbid (principal, action, resource) when { resource.no_such_attribute };
"""


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bundle"
    shutil.copytree(POLICIES, directory, ignore=shutil.ignore_patterns("tests"))
    return directory


@pytest.fixture
def cache(tmp_path: Path) -> ValidationCache:
    return ValidationCache(tmp_path / "state" / "validated")


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The policy texts Cedar's validator was run on, in order."""
    seen: list[str] = []
    real = validation_module.check_full

    def counting(text: str, schema: cedarpy.Schema) -> cedarpy.ValidationResult:
        seen.append(text)
        return real(text, schema)

    monkeypatch.setattr("pdp.engine.bundle.check_full", counting)
    return seen


def markers(cache: ValidationCache) -> list[Path]:
    return sorted(cache.directory.iterdir()) if cache.directory.is_dir() else []


def policy_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.cedar"))


def plant_pass_for(cache: ValidationCache, directory: Path) -> None:
    """Write, as this PDP's user, the markers that would pass every policy file of
    ``directory`` under its schema now: the forger's best effort."""
    for path in policy_files(directory):
        cache.record_pass(cache.key(_schema_text(directory), path.read_text()))


def _schema_text(directory: Path) -> str:
    """The merged schema text validation reads (what the key binds)."""
    problems: list[BundleProblem] = []
    files = bundle_module._read_bundle_files(directory)
    _, text, _ = bundle_module._load_schema(files, problems, [])
    assert not problems
    return text


def add_invalid_policy(directory: Path) -> None:
    (directory / "zz_invalid.cedar").write_text(INVALID)


def test_a_restart_on_the_same_policies_skips_the_validator(
        bundle_dir: Path, cache: ValidationCache, validations: list[str]) -> None:
    cold = load_bundle(bundle_dir, validation_cache=cache)
    files = len(policy_files(bundle_dir))
    assert len(validations) == files
    assert len(markers(cache)) == files
    warm = load_bundle(bundle_dir, validation_cache=cache)
    assert len(validations) == files  # not one more
    assert_same_bundle(warm, cold)
    assert_same_bundle(warm, load_bundle(bundle_dir))


def test_a_changed_policy_file_alone_is_validated_again(
        bundle_dir: Path, cache: ValidationCache, validations: list[str]) -> None:
    load_bundle(bundle_dir, validation_cache=cache)
    changed = policy_files(bundle_dir)[0]
    changed.write_text(changed.read_text() + "\n// a comment changes the text\n")
    validations.clear()
    load_bundle(bundle_dir, validation_cache=cache)
    assert validations == [changed.read_text()]


def test_an_invalid_bundle_is_refused_and_never_recorded(
        bundle_dir: Path, cache: ValidationCache) -> None:
    add_invalid_policy(bundle_dir)
    for _ in range(2):
        with pytest.raises(BundleInvalid, match="no_such_attribute"):
            load_bundle(bundle_dir, validation_cache=cache)
    assert markers(cache) == []  # even the valid files: a refused load records nothing


def test_the_marker_of_a_different_bundle_does_not_pass_this_one(
        bundle_dir: Path, cache: ValidationCache) -> None:
    load_bundle(bundle_dir, validation_cache=cache)  # every marker of the good bundle
    target = policy_files(bundle_dir)[0]
    # The same file name, one forbid more: a new text, so a new digest.
    target.write_text(target.read_text() + "\n" + INVALID)
    with pytest.raises(BundleInvalid, match="no_such_attribute"):
        load_bundle(bundle_dir, validation_cache=cache)
    # Renaming an old marker to the new digest is what forging is (next tests).


def test_a_marker_of_the_old_schema_does_not_pass_under_a_changed_one(
        tmp_path: Path, cache: ValidationCache) -> None:
    directory = tmp_path / "b"
    directory.mkdir()
    (directory / "schema.cedarschema").write_text(
        "entity Doc = { owner: String };\naction read appliesTo { principal: Pdp::Workload, "
        "resource: Doc };\n")
    (directory / "p.cedar").write_text(
        '@id("p") @reason("r")\npermit (principal, action == Action::"read", resource) '
        'when { resource.owner == "a" };\n')
    load_bundle(directory, validation_cache=cache)
    assert len(markers(cache)) == 1
    # The attribute is gone from the schema: the same policy text no longer validates.
    (directory / "schema.cedarschema").write_text(
        "entity Doc;\naction read appliesTo { principal: Pdp::Workload, resource: Doc };\n")
    with pytest.raises(BundleInvalid, match="owner"):
        load_bundle(directory, validation_cache=cache)


def test_another_cedarpy_build_or_pdp_version_validates_again(
        bundle_dir: Path, tmp_path: Path, validations: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    load_bundle(bundle_dir, validation_cache=ValidationCache(tmp_path / "v"))
    files = len(validations)
    monkeypatch.setattr(cache_module, "cedar_build", lambda: b"cedarpy 99.0.0")
    load_bundle(bundle_dir, validation_cache=ValidationCache(tmp_path / "v"))
    assert len(validations) == 2 * files
    monkeypatch.setattr("pdp.__version__", "999.0")
    load_bundle(bundle_dir, validation_cache=ValidationCache(tmp_path / "v"))
    assert len(validations) == 3 * files


def test_the_key_binds_every_input_and_cannot_be_shifted_between_them() -> None:
    key = cache_module.verdict_key
    base = key("schema", "policy", validator=b"v")
    assert len({base, key("schema!", "policy", validator=b"v"),
                key("schema", "policy!", validator=b"v"), key("schema", "policy", validator=b"w"),
                # The same bytes split differently between the schema and the policies.
                key("schemap", "olicy", validator=b"v")}) == 5
    assert cache_module.cedar_build().startswith(version("cedarpy").encode())


def test_a_forged_marker_this_pdp_did_not_write_whole_is_not_believed(
        bundle_dir: Path, cache: ValidationCache) -> None:
    add_invalid_policy(bundle_dir)
    plant_pass_for(cache, bundle_dir)
    forged = markers(cache)
    assert forged
    for wrong in (b"", b"yes\n", forged[0].read_bytes()[:-1], forged[0].read_bytes() + b"x",
                  ("0" * 64 + "\n").encode()):
        for marker in forged:
            marker.write_bytes(wrong)  # torn, truncated, padded, or naming another digest
        with pytest.raises(BundleInvalid, match="no_such_attribute"):
            load_bundle(bundle_dir, validation_cache=cache)


@pytest.mark.parametrize("where", ["marker", "directory"])
def test_a_marker_others_could_write_is_not_believed(
        bundle_dir: Path, cache: ValidationCache, where: str) -> None:
    add_invalid_policy(bundle_dir)
    plant_pass_for(cache, bundle_dir)
    for path in ([*markers(cache)] if where == "marker" else [cache.directory]):
        path.chmod(path.stat().st_mode | 0o002)
    with pytest.raises(BundleInvalid, match="no_such_attribute"):
        load_bundle(bundle_dir, validation_cache=cache)


def test_a_linked_marker_is_not_believed(bundle_dir: Path, cache: ValidationCache,
                                         tmp_path: Path) -> None:
    add_invalid_policy(bundle_dir)
    plant_pass_for(cache, bundle_dir)
    for marker in markers(cache):
        target = tmp_path / f"elsewhere-{marker.name}"
        marker.rename(target)
        marker.symlink_to(target)
    with pytest.raises(BundleInvalid, match="no_such_attribute"):
        load_bundle(bundle_dir, validation_cache=cache)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_a_marker_owned_by_another_user_is_not_believed(
        bundle_dir: Path, cache: ValidationCache) -> None:
    add_invalid_policy(bundle_dir)
    plant_pass_for(cache, bundle_dir)
    for marker in markers(cache):
        os.chown(marker, 65534, 65534)
    with pytest.raises(BundleInvalid, match="no_such_attribute"):
        load_bundle(bundle_dir, validation_cache=cache)


def test_what_a_forger_with_the_pdps_own_user_can_do_is_load_the_invalid_bundle(
        bundle_dir: Path, cache: ValidationCache) -> None:
    """The documented limit (module docstring): the PDP's own user can write a marker that
    is believed. What then loads is Cedar's evaluation of the text: its errored forbid
    still denies. This test pins the limit so that a change of it is seen."""
    add_invalid_policy(bundle_dir)
    plant_pass_for(cache, bundle_dir)
    bundle = load_bundle(bundle_dir, validation_cache=cache)
    assert "typo" in bundle.policies
    with pytest.raises(BundleInvalid):
        load_bundle(bundle_dir)  # without the cache (`pdp validate`), refused as ever


def test_a_state_directory_that_cannot_be_written_loads_and_validates(
        bundle_dir: Path, tmp_path: Path, validations: list[str]) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    cache = ValidationCache(blocker / "validated")  # mkdir fails (ENOTDIR)
    for _ in range(2):
        load_bundle(bundle_dir, validation_cache=cache)
    assert len(validations) == 2 * len(policy_files(bundle_dir))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only mode")
def test_a_read_only_state_directory_loads_and_validates(
        bundle_dir: Path, tmp_path: Path, validations: list[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o500)
    try:
        cache = ValidationCache(state / "validated")
        for _ in range(2):
            load_bundle(bundle_dir, validation_cache=cache)
    finally:
        state.chmod(0o700)
    assert len(validations) == 2 * len(policy_files(bundle_dir))


def _record_many(directory: str, keys: list[str]) -> None:
    cache = ValidationCache(Path(directory), keep=1000)
    for key in keys:
        cache.record_pass(key)


def test_two_processes_writing_at_once_leave_only_whole_markers(tmp_path: Path) -> None:
    directory = tmp_path / "validated"
    keys = [f"{i:064x}" for i in range(200)]
    context = multiprocessing.get_context("fork")
    # Both write every key (the same markers at once), in opposite orders.
    writers = [context.Process(target=_record_many, args=(str(directory), order))
               for order in (keys, keys[::-1])]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    cache = ValidationCache(directory)
    assert sorted(p.name for p in directory.iterdir()) == sorted(keys)  # no temporaries
    assert all(cache.passed(key) for key in keys)


def test_the_oldest_markers_go_first(tmp_path: Path) -> None:
    cache = ValidationCache(tmp_path / "v", keep=3)
    keys = [f"{i:064x}" for i in range(5)]
    for age, key in enumerate(keys):
        cache.record_pass(key)
        os.utime(cache.directory / key, ns=(age * 10**9, age * 10**9))
    cache.record_pass(keys[-1])  # the prune runs on a write
    assert [p.name for p in markers(cache)] == keys[2:]


def test_the_setting_turns_it_off_and_a_store_passes_it_on(
        bundle_dir: Path, tmp_path: Path) -> None:
    assert validation_cache(Settings(state_dir=tmp_path, validation_cache=False)) is None
    cache = validation_cache(Settings(state_dir=tmp_path))
    assert cache is not None and cache.directory == tmp_path / "validated"
    BundleStore(bundle_dir, validation_cache=cache).load_initial()
    assert len(markers(cache)) == len(policy_files(bundle_dir))


def cold_then_warm(case: Case, tmp: Path) -> tuple[Bundle, ValidationCache, Bundle]:
    """The generated bundle (written to ``tmp/bundle``) loaded without the caches, then
    with them twice (``tmp/validated`` and beside it): the reference, the caches, and
    the second (warm) load."""
    directory = tmp / "bundle"
    directory.mkdir()
    for name, text in case.files().items():
        (directory / name).write_text(text)
    cache = ValidationCache(tmp / "validated")
    reference = load_bundle(directory)
    load_bundle(directory, validation_cache=cache)
    return reference, cache, load_bundle(directory, validation_cache=cache)


def assert_same_bundle(ours: Bundle, reference: Bundle) -> None:
    assert ours.version == reference.version
    assert ours.schema_text == reference.schema_text
    assert ours.policies == reference.policies
    assert ours.warnings == reference.warnings


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(case=cases())
def test_a_bundle_loaded_on_cached_verdicts_equals_a_validated_one_and_decides_as_cedar(
        case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reference, cache, warm = cold_then_warm(case, Path(tmp))
        assert markers(cache)
    assert_same_bundle(warm, reference)
    check_requests(case, warm)
