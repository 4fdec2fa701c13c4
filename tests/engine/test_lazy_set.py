"""The whole policy set of a sliced bundle is built on first use (pdp.engine.lazy_set,
issue 16): never for a decision, once for concurrent first uses, again after a build
that failed, equal to the set a reload builds at once, and a reload while a first use
builds the old bundle's set gives each bundle its own."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cedarpy
import pytest

from pdp.engine import bundle as bundle_module
from pdp.engine.bundle import load_bundle
from pdp.engine.grants import GrantError, check_grant
from pdp.engine.lazy_set import LazyPolicySet
from pdp.engine.store import BundleStore
from tests.conftest import POLICIES

ADDED = '\n@id("added-by-the-reload") @reason("r")\nforbid (principal, action, resource);\n'


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return tmp_path / "policies"


def ids(policy_set: cedarpy.PolicySet) -> set[str]:
    nodes = policy_set.to_pst()
    return set(nodes.static_policies) | set(nodes.templates)


def test_a_start_leaves_the_set_to_its_first_use_which_equals_a_reloads(
        bundle_dir: Path) -> None:
    at_start = load_bundle(bundle_dir)
    assert at_start.index is not None and not at_start.full_set.is_built
    on_reload = load_bundle(bundle_dir, share_gil=True)
    assert on_reload.full_set.is_built  # a reload builds it beside the loop, as before
    assert at_start.policy_set.to_pst() == on_reload.policy_set.to_pst()
    assert at_start.policy_set.templates() == on_reload.policy_set.templates()
    assert at_start.full_set.is_built
    assert at_start.policy_set is at_start.policy_set  # kept, not built per use


def test_a_bundle_without_an_index_builds_it_at_load(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema").write_text(
        (POLICIES / "schema.cedarschema").read_text())
    (tmp_path / "one.cedar").write_text('@id("only") @reason("r")\n'
                                        'forbid (principal, action, resource);\n')
    bundle = load_bundle(tmp_path)
    assert bundle.index is None and bundle.full_set.is_built  # it decides every request
    assert ids(bundle.policy_set) == {"only"}


def test_a_grant_checked_before_any_build_builds_it(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    template = next(pid for pid, info in bundle.policies.items() if info.is_template)
    assert check_grant(bundle, template).id == template
    assert bundle.full_set.is_built
    static = next(pid for pid, info in bundle.policies.items() if not info.is_template)
    with pytest.raises(GrantError):
        check_grant(bundle, static)


def test_concurrent_first_uses_build_it_once() -> None:
    built = []
    gate = threading.Event()

    def build() -> cedarpy.PolicySet:
        gate.wait(5)
        built.append(1)
        return cedarpy.PolicySet.from_str("permit (principal, action, resource);")

    lazy = LazyPolicySet(build)
    with ThreadPoolExecutor(max_workers=8) as pool:
        uses = [pool.submit(lazy.get) for _ in range(8)]
        gate.set()
        sets = {id(use.result()) for use in uses}
    assert built == [1] and len(sets) == 1


def test_a_build_that_failed_raises_and_is_tried_again() -> None:
    attempts = []

    def build() -> cedarpy.PolicySet:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("Cedar refused the set")
        return cedarpy.PolicySet.from_str("permit (principal, action, resource);")

    lazy = LazyPolicySet(build)
    with pytest.raises(ValueError, match="refused"):
        lazy.get()
    assert not lazy.is_built
    assert len(lazy.get()) == 1 and len(attempts) == 2


def test_a_reload_while_the_old_bundles_set_is_built_gives_each_its_own(
        bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    building, release = threading.Event(), threading.Event()
    real = bundle_module._build_policy_set

    def slow_build(*args: object) -> cedarpy.PolicySet:
        building.set()
        release.wait(10)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bundle_module, "_build_policy_set", slow_build)
    store = BundleStore(bundle_dir)
    old = store.load_initial()
    with ThreadPoolExecutor(max_workers=1) as pool:
        first_use = pool.submit(lambda: old.policy_set)
        assert building.wait(10)
        with (bundle_dir / "datasets.cedar").open("a") as f:
            f.write(ADDED)
        assert store.reload().ok
        new = store.current
        assert new is not None and new is not old
        assert "added-by-the-reload" in ids(new.policy_set)
        release.set()
        assert "added-by-the-reload" not in ids(first_use.result())
    assert old.policy_set is first_use.result()
    assert ids(old.policy_set) | {"added-by-the-reload"} == ids(new.policy_set)
