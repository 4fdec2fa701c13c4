"""``pdp.engine.store.preload`` (issue 16): the bundle the ``pdp serve --workers N``
supervisor loaded before forking is used only while its directory holds the very files
it was loaded from — a changed, added or removed file, or another directory, loads anew."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.engine import load_bundle
from pdp.engine.bundle import _read_bundle_files, compute_version, version_on_disk
from pdp.engine.store import BundleStore, preload
from tests.conftest import POLICIES


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(POLICIES, tmp_path / "policies")
    yield tmp_path / "policies"
    preload(None)  # nothing leaks into other tests


def test_unchanged_files_reuse_the_preloaded_bundle(bundle_dir: Path) -> None:
    loaded = load_bundle(bundle_dir)
    preload(loaded)
    assert BundleStore(bundle_dir).load_initial() is loaded


@pytest.mark.parametrize("change", ["edit", "add", "remove"])
def test_changed_files_are_loaded_not_the_stale_preload(bundle_dir: Path, change: str) -> None:
    loaded = load_bundle(bundle_dir)
    preload(loaded)
    if change == "edit":
        with (bundle_dir / "datasets.cedar").open("a") as f:
            f.write("\n// changed after the supervisor loaded\n")
    elif change == "add":
        (bundle_dir / "extra.cedar").write_text(
            '@id("extra.forbid")\nforbid (principal, action, resource is App::Dataset) '
            'when { false };\n')
    else:
        (bundle_dir / "grants.cedar").unlink()
    fresh = BundleStore(bundle_dir).load_initial()
    assert fresh is not loaded
    assert fresh.version != loaded.version
    assert fresh.version == load_bundle(bundle_dir).version
    assert ("extra.forbid" in fresh.policies) == (change == "add")


@pytest.mark.parametrize("name", ["entities.json", "schema.cedarschema", "tests/datasets.yaml",
                                  "guards.cedar"])
def test_a_same_size_edit_of_any_file_is_seen(bundle_dir: Path, name: str) -> None:
    """The worker's check hashes every file as it streams it (``version_on_disk``):
    one byte swapped for another, the size and the names unchanged, is a new version."""
    loaded = load_bundle(bundle_dir)
    preload(loaded)
    path = bundle_dir / name
    data = bytearray(path.read_bytes())
    at = data.index(b" ")  # a space becomes a tab: still valid, same size
    data[at:at + 1] = b"\t"
    path.write_bytes(bytes(data))
    assert version_on_disk(bundle_dir) != loaded.version
    assert BundleStore(bundle_dir).load_initial() is not loaded


def test_the_streamed_version_is_the_loaders(bundle_dir: Path) -> None:
    """``version_on_disk`` (read in blocks) and ``compute_version`` (the loader's, over
    the files read whole) agree, or no worker would ever take the preloaded bundle."""
    (bundle_dir / "big.cedar").write_text("// padding\n" * 100_000)  # past one read block
    expected = compute_version(bundle_dir, _read_bundle_files(bundle_dir))
    assert version_on_disk(bundle_dir) == expected
    assert load_bundle(bundle_dir).version == expected


def test_another_directory_with_the_same_files_loads_its_own(bundle_dir: Path,
                                                              tmp_path: Path) -> None:
    preload(load_bundle(bundle_dir))
    other = shutil.copytree(bundle_dir, tmp_path / "other")
    fresh = BundleStore(other).load_initial()
    assert fresh.directory == other


def test_a_bad_file_after_the_preload_is_refused_not_hidden(bundle_dir: Path) -> None:
    from pdp.engine.problems import BundleInvalid

    preload(load_bundle(bundle_dir))
    (bundle_dir / "datasets.cedar").write_text("permit (principal, action, resource")
    with pytest.raises(BundleInvalid):
        BundleStore(bundle_dir).load_initial()


def test_a_relative_directory_finds_the_preload(bundle_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``pdp serve`` in the bundle's parent names it ``policies``; the bundle keeps its
    absolute path: the preload was missed, and every worker parsed the bundle again."""
    loaded = load_bundle(bundle_dir)
    preload(loaded)
    monkeypatch.chdir(bundle_dir.parent)
    assert BundleStore(Path(bundle_dir.name)).load_initial() is loaded


def test_an_authoritative_preload_is_the_first_load_whatever_the_files_but_not_a_reload(
        bundle_dir: Path) -> None:
    """The supervisor's bundle, for a worker it forks (a restart after a refused change
    must not load the refused files); the supervisor's own reload reads the files."""
    loaded = load_bundle(bundle_dir)
    preload(loaded, authoritative=True)
    (bundle_dir / "datasets.cedar").write_text("permit(principal, action, resource) when { bogus };\n")
    store = BundleStore(bundle_dir)
    assert store.load_initial() is loaded
    refused = store.reload()
    assert not refused.ok and any("bogus" in p for p in refused.problems)
    assert store.current is loaded
