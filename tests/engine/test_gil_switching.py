"""A reload beside a serving loop lowers the GIL switch interval for its load only, and
puts back what it found, however loads overlap or end (pdp.engine.gil_switching)."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.engine import store as store_module
from pdp.engine.gil_switching import RELOAD_SWITCH_S, fine_switching
from pdp.engine.store import BundleStore
from tests.conftest import POLICIES


@pytest.fixture
def interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)  # a failing test must not slow the rest of the session


def _store(tmp_path: Path, name: str) -> BundleStore:
    shutil.copytree(POLICIES, tmp_path / name)
    store = BundleStore(tmp_path / name)
    store.load_initial()
    return store


def test_a_shared_reload_loads_with_the_finer_interval_and_restores_it(
        tmp_path: Path, interval: float, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path, "b")
    seen: list[float] = []
    real = store_module.load_bundle

    def spying(directory: Path, *, share_gil: bool = False, **options: int) -> object:
        seen.append(sys.getswitchinterval())
        return real(directory, share_gil=share_gil, **options)

    monkeypatch.setattr(store_module, "load_bundle", spying)
    assert store.reload().ok
    assert seen == [pytest.approx(RELOAD_SWITCH_S, abs=2e-6)]
    assert sys.getswitchinterval() == pytest.approx(interval, abs=2e-6)
    assert store.reload(share_gil=False).ok  # the supervisor's load: nobody to share with
    assert seen[1] == pytest.approx(interval, abs=2e-6)


def test_a_refused_bundle_restores_the_interval(tmp_path: Path, interval: float) -> None:
    store = _store(tmp_path, "b")
    (tmp_path / "b" / "broken.cedar").write_text("permit(principal, action, resource) when {")
    assert not store.reload().ok
    assert sys.getswitchinterval() == pytest.approx(interval, abs=2e-6)


def test_overlapping_loads_restore_the_interval_found_before_the_first(interval: float) -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with fine_switching():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with fine_switching():
        second_in.set()
        first_out.wait(5)
        # The first load ended while this one runs: the interval stays fine until it ends.
        assert sys.getswitchinterval() == pytest.approx(RELOAD_SWITCH_S, abs=2e-6)
    thread.join(5)
    assert sys.getswitchinterval() == pytest.approx(interval, abs=2e-6)


def test_an_interval_already_finer_is_not_coarsened(interval: float) -> None:
    sys.setswitchinterval(0.0001)
    with fine_switching():
        assert sys.getswitchinterval() == pytest.approx(0.0001, abs=2e-6)
    assert sys.getswitchinterval() == pytest.approx(0.0001, abs=2e-6)
