"""``pdp.engine.bundle.start_loading`` (issue 16): ``pdp serve`` begins Cedar's work on
its bundle before it imports the server, and the load takes that work only when it reads
the very same bytes — an edit in between, another directory's files or a head start
that failed loads from the files as they are, a reload never takes it, and a bundle
with mistakes is refused with the same problems."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pdp.engine import bundle as bundle_module
from pdp.engine.bundle import Bundle, load_bundle, start_loading
from pdp.engine.problems import BundleInvalid
from tests.conftest import POLICIES

NEW_POLICY = '\n@id("added-after-the-head-start") @reason("r")\nforbid (principal, action, resource);\n'


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(POLICIES, tmp_path / "policies")
    yield tmp_path / "policies"
    bundle_module._take_head_start({})  # nothing leaks into other tests


def begun(directory: Path) -> None:
    """Start loading ``directory`` and wait until the head start has read its files."""
    start_loading(directory)
    ahead = bundle_module._head_start
    assert ahead is not None
    ahead.begun.result()


def without_begin(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on a load that begins from scratch fails: only a head start can serve."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the load began again instead of taking the head start")
    monkeypatch.setattr(bundle_module, "_begin", refuse)


def same_bundle(a: Bundle, b: Bundle) -> None:
    assert a.version == b.version
    assert a.policies == b.policies
    assert a.warnings == b.warnings
    assert a.schema_text == b.schema_text
    assert a.static_attrs == b.static_attrs
    assert a.workload_parents == b.workload_parents
    assert len(a.entities) == len(b.entities)
    assert a.files == b.files


def test_the_load_takes_the_head_start_and_gives_the_same_bundle(
        bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_scratch = load_bundle(bundle_dir)
    begun(bundle_dir)
    without_begin(monkeypatch)
    same_bundle(load_bundle(bundle_dir), from_scratch)
    assert bundle_module._head_start is None  # taken once


@pytest.mark.parametrize("edit", ["policy", "entities", "added file", "removed file"])
def test_files_edited_after_the_head_start_are_loaded_as_they_are(
        bundle_dir: Path, edit: str) -> None:
    begun(bundle_dir)
    if edit == "policy":
        with (bundle_dir / "datasets.cedar").open("a") as f:
            f.write(NEW_POLICY)
    elif edit == "entities":
        text = (bundle_dir / "entities.json").read_text()
        (bundle_dir / "entities.json").write_text(text + " ")  # the same entities, new bytes
    elif edit == "added file":
        (bundle_dir / "late.cedar").write_text(NEW_POLICY)
    else:
        (bundle_dir / "live.cedar").unlink()
    loaded = load_bundle(bundle_dir)
    shutil.rmtree(bundle_dir.parent / "copy", ignore_errors=True)
    shutil.copytree(bundle_dir, bundle_dir.parent / "copy")
    from_scratch = load_bundle(bundle_dir.parent / "copy")
    assert loaded.version.sha256 == from_scratch.version.sha256
    assert loaded.policies == from_scratch.policies
    assert ("added-after-the-head-start" in loaded.policies) == (edit in ("policy", "added file"))


def test_a_head_start_of_another_directory_is_not_taken(
        bundle_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(bundle_dir, other)
    (other / "late.cedar").write_text(NEW_POLICY)
    begun(other)
    loaded = load_bundle(bundle_dir)
    assert "added-after-the-head-start" not in loaded.policies
    assert bundle_module._head_start is None  # dropped, not kept for later


def test_a_head_start_that_failed_is_loaded_from_scratch(
        bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = bundle_module._read_bundle_files
    calls = []

    def first_read_fails(directory: Path) -> dict[str, bytes]:
        calls.append(directory)
        if len(calls) == 1:
            raise OSError("the head start could not read the bundle")
        return real(directory)

    monkeypatch.setattr(bundle_module, "_read_bundle_files", first_read_fails)
    start_loading(bundle_dir)
    loaded = load_bundle(bundle_dir)
    monkeypatch.setattr(bundle_module, "_read_bundle_files", real)
    same_bundle(loaded, load_bundle(bundle_dir))
    assert len(calls) == 2


def test_a_reload_does_not_take_a_head_start(bundle_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    begun(bundle_dir)
    ahead = bundle_module._head_start
    load_bundle(bundle_dir, share_gil=True)
    assert bundle_module._head_start is ahead  # a start's, not a reload's


BROKEN = {
    "entities.json": '[{"uid": {"type": "Pdp::Workload", "id": "w"}, "attrs": {"a": 1}}]',
    "bad.cedar": '@id("x") permit (principal, action, resource) when { resource.nope };\n'
                 '@id("x") forbid (principal, action, resource);\n',
}


@pytest.mark.parametrize("broken", [["entities.json"], ["bad.cedar"], sorted(BROKEN)])
def test_a_bundle_with_mistakes_is_refused_with_the_same_problems(
        bundle_dir: Path, broken: list[str]) -> None:
    for name in broken:
        (bundle_dir / name).write_text(BROKEN[name])
    with pytest.raises(BundleInvalid) as from_scratch:
        load_bundle(bundle_dir)
    begun(bundle_dir)
    with pytest.raises(BundleInvalid) as ahead:
        load_bundle(bundle_dir)
    # Cedar's validator lists a policy's errors in no fixed order (its maps are hashed
    # with random seeds), so two loads from scratch differ there too: compared as lists
    # of what is said about which file, in the order of the files.
    assert ([p.file for p in ahead.value.problems]
            == [p.file for p in from_scratch.value.problems])
    assert sorted(map(str, ahead.value.problems)) == sorted(map(str, from_scratch.value.problems))
    assert ahead.value.problems
