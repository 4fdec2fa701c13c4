"""The first load runs with the cyclic collector paused (pdp.engine.store.BundleStore.load_initial),
and leaves it as it found it whatever happens: a refused bundle must not leave a
long-running process without its collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.engine import BundleInvalid
from pdp.engine.store import BundleStore


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def _spy_on_load(store: BundleStore, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    seen: list[bool] = []
    load = store._load

    def spied(**kw: object) -> object:
        seen.append(gc.isenabled())
        return load(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_load", spied)
    return seen


def test_the_first_load_runs_without_the_collector_and_turns_it_back_on(
        bundle_copy, monkeypatch: pytest.MonkeyPatch) -> None:
    gc.enable()
    store = BundleStore(bundle_copy())
    seen = _spy_on_load(store, monkeypatch)
    store.load_initial()
    assert seen == [False]
    assert gc.isenabled()


def test_a_refused_first_bundle_turns_the_collector_back_on(
        bundle_copy, monkeypatch: pytest.MonkeyPatch) -> None:
    gc.enable()
    directory: Path = bundle_copy()
    (directory / "broken.cedar").write_text("permit(")
    store = BundleStore(directory)
    seen = _spy_on_load(store, monkeypatch)
    with pytest.raises(BundleInvalid):
        store.load_initial()
    assert seen == [False]
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off(bundle_copy) -> None:
    gc.disable()
    BundleStore(bundle_copy()).load_initial()
    assert not gc.isenabled()


def test_reloads_keep_the_collector(bundle_copy, monkeypatch: pytest.MonkeyPatch) -> None:
    """Traffic runs beside a reload: its garbage is collected as usual."""
    gc.enable()
    directory: Path = bundle_copy()
    store = BundleStore(directory)
    store.load_initial()
    seen = _spy_on_load(store, monkeypatch)
    (directory / "apis.cedar").write_text((directory / "apis.cedar").read_text() + "\n// v2\n")
    assert store.reload().ok
    assert seen and all(seen)
