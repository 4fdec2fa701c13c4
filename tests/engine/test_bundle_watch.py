"""The bundle directory is watched for file events (watchfiles), with a slow poll as the
safety net; a refused reload keeps the last good bundle. Waits are bounded and nothing
asserts on speed: the polls are set to an hour where a test must prove the events alone."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pdp.engine.store import BundleStore

HOUR = 3600.0


def wait_for(condition: Callable[[], bool], within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def touch_policy(directory: Path) -> None:
    path = directory / "apis.cedar"
    path.write_text(path.read_text() + "\n// touched\n")


def test_a_change_is_picked_up_by_the_file_watcher(bundle_copy) -> None:
    d = bundle_copy()
    store = BundleStore(d)
    first = store.load_initial()
    store.start_watching(interval_s=HOUR, safety_poll_s=HOUR)  # no poll will come
    try:
        touch_policy(d)  # right after the call: it must count
        assert wait_for(lambda: store.current is not first)
    finally:
        store.stop_watching()
    assert store.current is not None and store.current.version.sha256 != first.version.sha256


def test_a_refused_change_keeps_the_last_good_bundle(bundle_copy) -> None:
    d = bundle_copy()
    store = BundleStore(d)
    first = store.load_initial()
    store.start_watching(interval_s=HOUR, safety_poll_s=HOUR)
    try:
        (d / "broken.cedar").write_text("permit(")
        assert wait_for(lambda: store.last_error is not None)
        assert store.current is first
        (d / "broken.cedar").unlink()
        assert wait_for(lambda: store.last_error is None)
    finally:
        store.stop_watching()
    assert store.current is not None


def test_a_replaced_directory_is_watched_again(bundle_copy, tmp_path: Path) -> None:
    d = bundle_copy()
    store = BundleStore(d)
    first = store.load_initial()
    store.start_watching(interval_s=HOUR, safety_poll_s=HOUR)
    try:
        new = tmp_path / "next"
        shutil.copytree(d, new)
        touch_policy(new)
        d.rename(tmp_path / "old")  # the watch followed this one, which no longer counts
        new.rename(d)
        assert wait_for(lambda: store.current is not first)
        second = store.current
        touch_policy(d)  # seen only if the new directory is watched
        assert wait_for(lambda: store.current is not second)
    finally:
        store.stop_watching()


def test_the_safety_poll_finds_a_change_no_event_reported(bundle_copy) -> None:
    d = bundle_copy()
    store = BundleStore(d)
    store.load_initial()
    outcomes: list[object] = []
    store.subscribe(outcomes.append)
    store.start_watching(interval_s=HOUR, safety_poll_s=0.2)
    try:
        # watchfiles' filter drops editor swap files, so no event comes; the file is still
        # in the directory the fingerprint reads, and only the poll can see it.
        (d / ".apis.cedar.swp").write_text("swap")
        assert wait_for(lambda: len(outcomes) == 1)
    finally:
        store.stop_watching()


def test_stop_watching_ends_the_thread(bundle_copy) -> None:
    store = BundleStore(bundle_copy())
    store.load_initial()
    store.start_watching(interval_s=HOUR, safety_poll_s=HOUR)
    thread = store._watcher
    store.stop_watching()
    assert thread is not None and not thread.is_alive()
