"""The one swapped-atomically bundle: load, reload, keep the last good one.

Readers take ``store.current`` once per decision and use that object to the
end, so a reload in the middle of a decision never mixes two bundles. A bad
bundle never replaces a good one: the failure is kept in ``last_error`` for
``/readyz`` and metrics, and the old bundle keeps serving.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pdp.collector import paused
from pdp.engine.bundle import Bundle, load_bundle, version_on_disk
from pdp.engine.bundle_watch import SAFETY_POLL_S, wakeups
from pdp.engine.cache_budget import ANSWER_MEMO_BYTES
from pdp.engine.gil_switching import fine_switching
from pdp.engine.problems import BundleInvalid, BundleProblem
from pdp.engine.sources import BundleSource, DirectorySource, SourceError
from pdp.engine.validation_cache import ValidationCache

SETTLE_S = 0.2
"""After a change is seen, how long to let its writer finish before loading."""
ARM_TIMEOUT_S = 5.0
"""Longest ``start_watching`` waits for the watch to be in place (a slow git fetch)."""


@dataclass(frozen=True, slots=True)
class _Preload:
    bundle: Bundle
    authoritative: bool


_preloaded: _Preload | None = None


def preload(bundle: Bundle | None, *, authoritative: bool = False) -> None:
    """Offer ``bundle`` to every ``BundleStore`` of this process and of processes forked
    from it, for as long as its directory holds the very files it was loaded from, or,
    ``authoritative``, whatever the files hold now.

    ``pdp serve --workers N`` loads the bundle once in the supervisor, calls this and
    forks: each worker's first load finds the bundle already built (parsing 10,000
    policies takes seconds) and its pages stay shared with the supervisor's until
    written. The supervisor owns reloads (:mod:`pdp.cli.workers`): a worker serves the
    bundle it was given, and is replaced when the supervisor has loaded a newer one
    (authoritative). Otherwise a store whose directory changed in between loads the
    files it finds, as it would without this.
    """
    global _preloaded
    _preloaded = None if bundle is None else _Preload(bundle, authoritative)


def _preloaded_for(directory: Path, *, first_load: bool) -> Bundle | None:
    """The preloaded bundle, if it was loaded from ``directory``: its current files, or,
    for a store's first load and an authoritative preload, whatever they hold now (a
    reload always looks at the files)."""
    offered = _preloaded
    # Resolved: a bundle keeps its absolute directory; a source may name it relatively.
    if offered is None or offered.bundle.directory != directory.resolve():
        return None
    if offered.authoritative and first_load:
        return offered.bundle
    try:
        version = version_on_disk(directory)  # streamed: see its docstring
    except OSError:
        return None  # the full load reports what is wrong
    return offered.bundle if version == offered.bundle.version else None


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    ok: bool
    changed: bool
    version: str | None
    problems: tuple[str, ...] = ()
    # Who asked: a principal with the decision that allowed it, or None for the watcher.
    requested_by: str | None = None
    authorized_by: str | None = None
    # False when another process records this outcome in the decision log: with
    # ``pdp serve --workers N`` the supervisor reloads and tells every worker, one records.
    record: bool = True


@dataclass(frozen=True, slots=True)
class ReloadFailure:
    at: datetime
    problems: tuple[str, ...]


class BundleStore:
    """Holds the current bundle; ``reload()`` swaps in a new one only if it is valid."""

    def __init__(self, source: Path | BundleSource, *,
                 validation_cache: ValidationCache | None = None,
                 answer_memo_bytes: int = ANSWER_MEMO_BYTES) -> None:
        """``validation_cache``: verdicts of Cedar's validator kept across loads and
        restarts (:mod:`pdp.engine.validation_cache`); None validates every load in full.
        ``answer_memo_bytes``: the memo of Cedar's answers each loaded bundle starts
        with (``pdp.engine.answer_memo``; 0 turns it off)."""
        self._answer_memo_bytes = answer_memo_bytes
        self.source: BundleSource = (DirectorySource(source) if isinstance(source, (str, Path))
                                     else source)
        self.validation_cache = validation_cache
        self._listeners: list[Callable[[ReloadOutcome], None]] = []
        self._lock = threading.Lock()
        self._current: Bundle | None = None
        self.last_error: ReloadFailure | None = None
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._delegate: Callable[[str | None, str | None], ReloadOutcome] | None = None

    @property
    def current(self) -> Bundle | None:
        return self._current

    @property
    def directory(self) -> Path:
        """The directory the current bundle was loaded from."""
        if self._current is not None:
            return self._current.directory
        return self.source.fetch()

    def _load(self, *, share_gil: bool = False, first_load: bool = False) -> Bundle:
        try:
            directory = self.source.fetch()
        except SourceError as e:
            raise BundleInvalid(Path(self.source.label),
                                [BundleProblem(self.source.label, str(e))]) from e
        preloaded = _preloaded_for(directory, first_load=first_load)
        if preloaded is not None:
            return preloaded
        try:
            return load_bundle(directory, share_gil=share_gil,
                               validation_cache=self.validation_cache,
                               answer_memo_bytes=self._answer_memo_bytes)
        finally:
            _release_free_memory()

    def load_initial(self) -> Bundle:
        """The first load: with nothing to fall back to, a refused bundle raises
        ``BundleInvalid``.

        It runs with the cyclic garbage collector paused (:func:`pdp.collector.paused`). A
        load builds millions of objects that all live on (10,000 policies), and each full
        pass of the collector walks them all to find nothing: four passes, 0.82-0.89x the
        wall time of a bare load, 0.93-1.00x of `pdp serve`'s first start to `/readyz` with
        one worker (bench/RESULTS.md, "Issue 16, round 8: the first load without the
        collector"). The PDP serves nothing before its first load; the server collects and
        freezes what the load built right after (``pdp.api.app.freeze_loaded_bundle``), and
        ``pdp serve`` keeps the pause until then (:func:`pdp.cli.serve.prepare_workers`).
        Reloads keep the collector: traffic runs beside them."""
        with paused():
            bundle = self._load(first_load=True)
        with self._lock:
            self._current = bundle
            self.last_error = None
        self._notify(ReloadOutcome(ok=True, changed=True, version=bundle.version.label))
        return bundle

    def subscribe(self, listener: Callable[[ReloadOutcome], None]) -> None:
        """Call ``listener`` after every load or reload attempt (metrics, the audit log)."""
        self._listeners.append(listener)

    def _notify(self, outcome: ReloadOutcome) -> None:
        for listener in self._listeners:
            listener(outcome)

    def delegate_reloads(self, ask: Callable[[str | None, str | None], ReloadOutcome]) -> None:
        """Reload by asking someone else: a worker of ``pdp serve --workers N``, whose
        supervisor loads the bundle and replaces the workers (:mod:`pdp.cli.workers`).
        ``ask(requested_by, authorized_by)`` returns the outcome once it is known; the
        outcome reaches this store through :meth:`apply`."""
        self._delegate = ask

    def apply(self, outcome: ReloadOutcome) -> None:
        """Take a reload outcome decided elsewhere (the supervisor): a refused bundle is
        this process's ``last_error`` too, and every listener hears of it."""
        with self._lock:
            self.last_error = (None if outcome.ok else
                               ReloadFailure(at=datetime.now(UTC), problems=outcome.problems))
        self._notify(outcome)

    def reload(self, requested_by: str | None = None, authorized_by: str | None = None, *,
               share_gil: bool = True) -> ReloadOutcome:
        """Load the directory again; swap only if valid. Serialized: one reload at a time.

        ``share_gil``: load in slices that give the GIL to the requests answered beside
        the load; False loads faster where nothing else needs it (the supervisor).
        """
        if self._delegate is not None:
            return self._delegate(requested_by, authorized_by)
        with self._lock:
            try:
                if share_gil:  # the loop gets the GIL back sooner: see gil_switching
                    with fine_switching():
                        bundle = self._load(share_gil=True)
                else:
                    bundle = self._load(share_gil=False)
            except BundleInvalid as e:
                problems = tuple(str(p) for p in e.problems)
                self.last_error = ReloadFailure(at=datetime.now(UTC), problems=problems)
                old = self._current.version.label if self._current else None
                outcome = ReloadOutcome(ok=False, changed=False, version=old, problems=problems,
                                        requested_by=requested_by, authorized_by=authorized_by)
            else:
                changed = self._current is None or (
                    self._current.version.sha256 != bundle.version.sha256
                    or self._current.version.commit != bundle.version.commit)
                self._current = bundle
                self.last_error = None
                outcome = ReloadOutcome(ok=True, changed=changed, version=bundle.version.label,
                                        requested_by=requested_by, authorized_by=authorized_by)
        self._notify(outcome)
        return outcome

    def start_watching(self, interval_s: float = 1.0, *,
                       safety_poll_s: float = SAFETY_POLL_S,
                       on_change: Callable[[], object] | None = None) -> None:
        """Reload when the source changes (see :mod:`pdp.engine.bundle_watch`), or call
        ``on_change`` instead (the supervisor of ``pdp serve --workers N`` queues it).

        A directory: on file events, with a look every ``safety_poll_s`` in case events
        are missed, or every ``interval_s`` while it cannot be watched. A git ref: its
        commit is polled every ``interval_s``.
        """
        if self._watcher is not None:
            return
        self._watch_stop.clear()
        armed = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, args=(interval_s, safety_poll_s, armed, on_change or self.reload),
            name="pdp-bundle-watch",
            daemon=True)
        self._watcher.start()
        # Return once the watch is in place: a change right after this call must count.
        armed.wait(timeout=ARM_TIMEOUT_S)

    def stop_watching(self) -> None:
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def _watch(self, interval_s: float, safety_poll_s: float, armed: threading.Event,
               on_change: Callable[[], object]) -> None:
        seen: object = None

        def take_fingerprint() -> None:  # the "before" state, once changes would be seen
            nonlocal seen
            seen = self._fingerprint()
            armed.set()

        for _ in wakeups(self.source, self._watch_stop, interval_s, safety_poll_s,
                         on_armed=take_fingerprint):
            if self._fingerprint() != seen:
                # Let an editor or `git checkout` finish writing before loading.
                if self._watch_stop.wait(min(SETTLE_S, interval_s)):
                    return
                seen = self._fingerprint()
                on_change()

    def _fingerprint(self) -> object:
        return self.source.fingerprint()


def _release_free_memory() -> None:
    """Hand memory freed while loading back to the OS (glibc keeps it otherwise).

    Loading a large bundle parses and validates entities.json in copies that are
    dropped afterwards; without this the process keeps their pages for good.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)
