"""After a load (``pdp serve``'s first, and every reload) the serving process freezes the
new bundle without a full collection (pdp.api.app.freeze_loaded_bundle: a full one
stalled every request for half a second at 10,000 policies, and delayed a start by as
much). That is only sound if a bundle holds no reference cycles, so that reference
counting frees the old one although it is frozen. Attacked here: a bundle that decided
requests (its caches filled) leaves no cyclic garbage behind, reloads that freeze each
new bundle do not pile old ones up, the modules are frozen only once their own garbage
is collected, and ``pdp serve`` starts with its bundle frozen, one worker or several.
"""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bench.generate import generate_bundle
from context.model import LiveSnapshot
from pdp.api.app import freeze_imported_modules, freeze_loaded_bundle
from pdp.cli.serve import build_for_serving
from pdp.config import load_settings
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine.bundle import Bundle, load_bundle
from pdp.engine.entity_slice import ENTITY_SLICE_MIN
from pdp.engine.store import BundleStore, preload
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10, POLICIES


@pytest.fixture
def no_automatic_collection() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()
        gc.collect()


@pytest.fixture(scope="module")
def big_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Past both slicing thresholds: a policy index and an entity slicer are built."""
    directory = tmp_path_factory.mktemp("big")
    generate_bundle(directory, policies=300, entities=ENTITY_SLICE_MIN + 100)
    return directory


def decide_some(bundle: Bundle) -> None:
    """Allows and denies (with their explanations): slices, entity sets, probes cached."""
    for w, ds in ((0, 0), (1, 3), (7, 11), (40, 2)):
        workload = f"spiffe://example.org/team{w % 6}/w{w}"
        identity = VerifiedIdentity(
            principal_id=workload, kind="jwt-svid", issuer="spiffe://example.org",
            trust_domain="example.org", path=workload.removeprefix("spiffe://example.org"),
            groups=frozenset({f"team{w % 6}"}), issued_at=MONDAY_10,
            expires_at=MONDAY_10 + timedelta(hours=1))
        for action in ("read", "write", "delete"):
            decide(bundle, identity=identity, action=action,
                   resource=ResourceRef("Gen::Dataset", f"ds{ds}"), context={},
                   live=LiveSnapshot(now=MONDAY_10, incident=False, risk_level=0,
                                       business_hours=True), now=MONDAY_10)


def test_a_loaded_bundle_that_decided_holds_no_reference_cycles(
        big_bundle: Path, no_automatic_collection: None) -> None:
    bundle = load_bundle(big_bundle)
    assert bundle.index is not None and bundle.entity_slicer is not None
    decide_some(bundle)
    gc.collect()  # what the load and the decisions left behind themselves
    del bundle
    assert gc.collect() == 0


def test_reloads_that_freeze_each_bundle_do_not_keep_the_old_ones(
        big_bundle: Path, tmp_path: Path, no_automatic_collection: None) -> None:
    directory = tmp_path / "b"
    directory.mkdir()
    for f in big_bundle.iterdir():
        (directory / f.name).write_bytes(f.read_bytes())
    store = BundleStore(directory)
    store.subscribe(lambda outcome: freeze_loaded_bundle() if outcome.changed else None)
    store.load_initial()
    freeze_loaded_bundle()

    def reload_changed(i: int) -> None:
        with (directory / "policies.cedar").open("a") as f:
            f.write(f"\n// version {i}\n")
        assert store.reload().changed

    reload_changed(0)
    one_bundle = sys.getallocatedblocks()
    for i in range(1, 6):
        reload_changed(i)
    # Five more bundles, each of tens of thousands of blocks, were loaded and frozen;
    # only the current one may remain.
    assert sys.getallocatedblocks() - one_bundle < 2_000


class Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_freezing_the_modules_first_collects_what_they_left_behind(
        no_automatic_collection: None) -> None:
    garbage = Cyclic()
    dead = weakref.ref(garbage)
    del garbage
    freeze_imported_modules()
    assert dead() is None


def frozen(obj: object) -> bool:
    """Out of the collector's reach: tracked, yet in none of its generations."""
    assert gc.is_tracked(obj)
    return all(o is not obj for o in gc.get_objects())


@pytest.mark.parametrize("supervised", [False, True])
def test_pdp_serve_starts_with_its_bundle_frozen(
        supervised: bool, tmp_path: Path, no_automatic_collection: None) -> None:
    settings = load_settings(None, dev=True, policies=POLICIES, state_dir=tmp_path,
                             watch_policies=False)
    components = build_for_serving(settings, supervised=supervised)
    try:
        bundle = components.bundles.current
        assert bundle is not None
        info = next(iter(bundle.policies.values()))
        assert frozen(bundle.policies) and frozen(info) and frozen(info.node)
        assert not frozen(Cyclic())  # what comes after is the collector's as before
    finally:
        components.close()
        preload(None)  # nothing leaks into other tests
