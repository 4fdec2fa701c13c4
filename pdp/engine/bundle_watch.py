"""When to look at a bundle source again: on file events for a directory, on a timer for
a git ref.

A directory is watched with `watchfiles <https://watchfiles.helpmanual.io/api/watch/>`_
(inotify on Linux, FSEvents on macOS): an edit is seen within a few tens of milliseconds
and an idle PDP reads nothing. A git ref has no events to listen to and is polled.

The watcher wakes its caller; the caller decides whether anything changed (the source's
fingerprint), so a spurious wake-up costs a few ``stat`` calls and nothing else.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import watchfiles

from pdp.engine.sources import BundleSource, DirectorySource

SAFETY_POLL_S = 10.0
"""How often a watched directory is looked at even without an event.

File events can be missed: on network and some container file systems (NFS, SMB, a
Docker Desktop bind mount) none arrive; when the directory itself is replaced (``mv``
of a new one over it) the watch still follows the old one; the kernel drops events when
its queue overflows. The fingerprint check at this interval bounds how long such a
change can go unnoticed."""

log = logging.getLogger("pdp.engine")


def wakeups(source: BundleSource, stop: threading.Event, poll_s: float,
            safety_poll_s: float = SAFETY_POLL_S,
            on_armed: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Yield whenever ``source`` may have changed, until ``stop`` is set.

    A directory: on file events, and at least every ``safety_poll_s``; every ``poll_s``
    while it cannot be watched (missing, out of inotify watches). Anything else: every
    ``poll_s``. ``on_armed`` is called once, as soon as a change would be noticed, so
    the caller can take its "before" fingerprint then and miss nothing in between.
    """
    armed = _Once(on_armed)
    if isinstance(source, DirectorySource):
        yield from _directory_wakeups(source.directory, stop, poll_s, safety_poll_s, armed)
    else:
        armed()
        yield from _polls(stop, poll_s)


def _polls(stop: threading.Event, every_s: float) -> Iterator[None]:
    while not stop.wait(every_s):
        yield


def _directory_wakeups(directory: Path, stop: threading.Event, poll_s: float,
                       safety_poll_s: float, armed: Callable[[], None]) -> Iterator[None]:
    warned = False
    while not stop.is_set():
        try:
            watched = os.stat(directory).st_ino
            # yield_on_timeout: an empty change set every safety_poll_s is the safety net.
            for _ in watchfiles.watch(directory, stop_event=_StopAsking(stop, armed),
                                      yield_on_timeout=True,
                                      rust_timeout=max(1, int(safety_poll_s * 1000))):
                yield
                if _inode(directory) != watched:
                    break  # replaced or removed: watch what the path names now
            else:
                return  # stopped
            warned = False
        except (OSError, RuntimeError) as e:  # watchfiles raises both for an unwatchable path
            armed()
            if not warned:
                log.warning("cannot watch the bundle directory %s (%s); polling every %s s",
                            directory, e, poll_s)
                warned = True
            if stop.wait(poll_s):
                return
            yield


class _StopAsking:
    """The stop event handed to watchfiles, which asks it only once its watch is in place:
    the first question is the moment the watch is armed."""

    def __init__(self, stop: threading.Event, armed: Callable[[], None]) -> None:
        self.stop, self.armed = stop, armed

    def is_set(self) -> bool:
        self.armed()
        return self.stop.is_set()


class _Once:
    def __init__(self, action: Callable[[], None]) -> None:
        self.action: Callable[[], None] | None = action

    def __call__(self) -> None:
        action, self.action = self.action, None
        if action is not None:
            action()


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
