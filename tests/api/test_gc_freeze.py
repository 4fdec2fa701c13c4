"""After a reload the serving process freezes the new bundle without a full collection
(pdp.api.app.freeze_reloaded_bundle: a full one stalled every request for half a second
at 10,000 policies). That is only sound if a bundle holds no reference cycles, so that
reference counting frees the old one although it is frozen. Attacked here: a bundle that
decided requests (its caches filled) leaves no cyclic garbage behind, and reloads that
freeze each new bundle do not pile old ones up.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bench.generate import generate_bundle
from context.model import LiveSnapshot
from pdp.api.app import freeze_reloaded_bundle
from pdp.decision.decide import decide
from pdp.decision.model import ResourceRef
from pdp.engine.bundle import Bundle, load_bundle
from pdp.engine.entity_slice import ENTITY_SLICE_MIN
from pdp.engine.store import BundleStore
from pdp.identity.model import VerifiedIdentity
from tests.conftest import MONDAY_10


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
    store.subscribe(lambda outcome: freeze_reloaded_bundle() if outcome.changed else None)
    store.load_initial()
    freeze_reloaded_bundle()

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
