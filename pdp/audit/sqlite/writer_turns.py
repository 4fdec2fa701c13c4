"""Turns at writing one SQLite log file, for the processes that append to it.

``pdp serve --workers N`` runs N writer threads, one per worker, on one file. SQLite lets
one connection write at a time and makes the others wait by polling: a writer that finds
the file locked sleeps 1, 2, 5, 10, … ms (SQLite's default busy handler, the only one
Python's ``sqlite3`` offers) and tries again, however soon the lock was let go. At 64
connections each worker's writer slept about a sixth of the time (2.7 ms a sleep) while a
commit held the file for a fraction of a millisecond, and every caller of that worker
waited with it; and once in, its cached chain head was often stale (the other worker had
appended), so four batches in ten failed their INSERT on ``seq`` and were redone from the
head on disk.

So they take turns through a lock of the kernel's (``flock`` on ``<file>-writer``): a
waiter is woken the moment the holder lets go, and the kernel lets go of a dead holder's
lock (``kill -9``). The holder leaves the ``seq`` it committed through in the same file,
mapped into every appender's memory, so the next one knows whether its cached head is
still the file's without asking SQLite.

The lock is advisory and the ``seq`` a hint: whatever they say, a batch is stored only if
its first ``seq`` is free (the primary key), and a batch that finds it taken is redone from
the head on disk (:meth:`pdp.audit.sqlite.log.SqliteDecisionLog._write_batch`), so a writer
that does not take part (an older release, another tool) or one killed between its commit
and its hint costs a redo, never a fork of the chain.

Ref: flock(2) — https://man7.org/linux/man-pages/man2/flock.2.html
"""

from __future__ import annotations

import fcntl
import mmap
import os
from contextlib import AbstractContextManager
from pathlib import Path

_HINT = 8  # bytes: the seq the last turn committed through, little-endian


class WriterTurns:
    """A turn at writing the log file, as a context manager (the writer thread's).

    ``waiting`` is entered while the turn has to wait for another process's (the log's
    busy mark, so that a wait longer than the commit bound shows on ``/readyz``). Each
    object opens the lock file anew: ``flock`` excludes per open file, so two logs on one
    file in one process take turns too, and a forked child never shares its parent's.
    """

    def __init__(self, path: Path, waiting: AbstractContextManager[None]) -> None:
        self.path = path
        self._waiting = waiting
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # Zeros: "no seq". Two openers racing here both set the size it already has.
            if os.fstat(fd).st_size < _HINT:
                os.ftruncate(fd, _HINT)
            self._map = mmap.mmap(fd, _HINT)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __enter__(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with self._waiting:
                fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def last_seq(self) -> int:
        """The seq the last turn committed through (0: none known). Read in a turn."""
        return int.from_bytes(self._map[:_HINT], "little")

    def committed(self, seq: int) -> None:
        """Leave ``seq`` for the next turn, ours or another process's. Called in a turn."""
        self._map[:_HINT] = seq.to_bytes(_HINT, "little")

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


__all__ = ["WriterTurns"]
