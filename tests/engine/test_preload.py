"""``pdp.engine.store.preload`` (issue 16): the bundle the ``pdp serve --workers N``
supervisor loaded before forking is used only while its directory holds the very files
it was loaded from — a changed, added or removed file, or another directory, loads anew."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.engine import load_bundle
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
